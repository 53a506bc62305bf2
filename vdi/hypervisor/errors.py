"""The one error type the driver raises."""

from __future__ import annotations


class HypervisorError(Exception):
    """A hypervisor operation failed.

    ``retryable`` says whether doing the same thing again later can help (a lost connection, a
    busy daemon) or not (a missing file, an invalid definition).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return self.message

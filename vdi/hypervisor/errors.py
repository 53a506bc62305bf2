"""The one error type the driver raises."""

from __future__ import annotations


class HypervisorError(Exception):
    """A hypervisor operation failed.

    ``retryable`` says whether doing the same thing again later can help (a lost connection, a
    busy daemon) or not (a missing file, an invalid definition). ``unreachable`` says that the
    host's libvirt could not be reached at all (it is down or restarting): the caller should
    wait for the host rather than call the desktop broken.
    """

    def __init__(self, message: str, *, retryable: bool = False,
                 unreachable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable or unreachable
        self.unreachable = unreachable

    def __str__(self) -> str:
        return self.message

"""Fault injection for the tests; unset (the default, and always in production) it does
nothing.

- ``VDI_CRASH_AT=<step>`` makes the worker kill its whole process group with SIGKILL when it
  reaches that step, as a power cut would.
- ``VDI_FAIL_ONCE_AT=<step>`` with ``VDI_FAIL_ONCE_MARKER=<file>`` raises a retryable
  HypervisorError the first time a worker reaches that step (the marker file records that it
  did), so the task's real retry can be observed.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from vdi.hypervisor import HypervisorError

STEPS = ("clone", "data-disk", "define", "boot", "booted")  # provisioning, in order
OTHER_STEPS = ("power-off", "undefine")  # reset and delete


def crash_point(step: str) -> None:
    if os.environ.get("VDI_CRASH_AT") == step:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if os.environ.get("VDI_FAIL_ONCE_AT") == step:
        marker = Path(os.environ["VDI_FAIL_ONCE_MARKER"])
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        raise HypervisorError(f"injected transient failure at {step}", retryable=True)

"""Fault injection for the crash tests: ``VDI_CRASH_AT=<step>`` makes the worker kill its
whole process group with SIGKILL when it reaches that step, as a power cut would. Unset (the
default, and always in production), it does nothing."""

from __future__ import annotations

import os
import signal

STEPS = ("clone", "data-disk", "define", "boot", "booted")  # provisioning, in order
OTHER_STEPS = ("power-off", "undefine")  # reset and delete


def crash_point(step: str) -> None:
    if os.environ.get("VDI_CRASH_AT") == step:
        os.killpg(os.getpgrp(), signal.SIGKILL)

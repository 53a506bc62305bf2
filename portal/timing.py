"""Timing limits that depend on each other, checked together at start-up.

The worker's operation lease, the reconciler's stuck-after deadline, Redis' visibility timeout,
the host outage window and the console heartbeat each assume something of the others; a
combination that breaks one of those assumptions stops start-up with a message that names the
settings and says what would go wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

LONGEST_BOOT = 120  # seconds a step may spend booting a guest, on top of its shutdowns


@dataclass(frozen=True)
class Timing:
    shutdown_timeout: int
    operation_lease: int
    stuck_after: int
    host_outage_window: int
    host_retry_max: int
    visibility_timeout: int
    console_heartbeat: int
    console_stale: int


def problems(t: Timing) -> list[str]:
    """Every broken dependency, in words; empty when the combination holds."""
    found = []
    longest_step = 2 * t.shutdown_timeout + LONGEST_BOOT  # a restart: shut down, boot
    if t.operation_lease <= longest_step:
        found.append(
            f"VDI_OPERATION_LEASE ({t.operation_lease} s) must be longer than the longest step, "
            f"a restart: 2 x VDI_SHUTDOWN_TIMEOUT ({t.shutdown_timeout} s) + {LONGEST_BOOT} s = "
            f"{longest_step} s; otherwise a redelivered task takes over one that still runs.")
    if t.visibility_timeout <= t.operation_lease:
        found.append(
            f"VDI_TASK_VISIBILITY_TIMEOUT ({t.visibility_timeout} s) must be longer than "
            f"VDI_OPERATION_LEASE ({t.operation_lease} s): Redis redelivers a task of a dead "
            "worker after the visibility timeout, and that copy must find the lease expired.")
    if t.visibility_timeout <= t.host_retry_max:
        found.append(
            f"VDI_TASK_VISIBILITY_TIMEOUT ({t.visibility_timeout} s) must be longer than "
            f"VDI_HOST_RETRY_MAX_SECONDS ({t.host_retry_max} s): a retry waiting for its "
            "countdown would be delivered twice.")
    if t.host_outage_window < t.host_retry_max:
        found.append(
            f"VDI_HOST_OUTAGE_WINDOW ({t.host_outage_window} s) must be at least "
            f"VDI_HOST_RETRY_MAX_SECONDS ({t.host_retry_max} s), or no retry fits in it.")
    needed = t.operation_lease + t.host_outage_window
    if t.stuck_after <= needed:
        found.append(
            f"VDI_STUCK_AFTER ({t.stuck_after} s) must be longer than VDI_OPERATION_LEASE + "
            f"VDI_HOST_OUTAGE_WINDOW ({needed} s): the reconciler would call a desktop stuck "
            "while its task still runs or still waits for its host.")
    if t.console_stale < 2 * t.console_heartbeat:
        found.append(
            f"VDI_CONSOLE_STALE ({t.console_stale} s) must be at least twice "
            f"VDI_CONSOLE_HEARTBEAT ({t.console_heartbeat} s): an open console would stop "
            "counting as connected between two heartbeats, and the idle policy would act.")
    return found

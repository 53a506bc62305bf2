"""A test that leaves a thread blocked (an event loop stuck cancelling a task, say) must not
keep the run from ending once pytest has reported: the interpreter joins every non-daemon
thread at exit, and CI would wait for it until its own time ran out. After the session a
watchdog gives the normal exit ``EXIT_GRACE`` s, then names the threads still alive, with
their stacks, and ends the process with pytest's exit status."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback

import pytest

EXIT_GRACE = 60.0
_status: list[int] = [0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status[0] = int(exitstatus)


def _stacks_of_other_threads() -> str:
    frames = sys._current_frames()
    lines = []
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.ident not in frames:
            continue
        lines.append(f"--- {thread.name} (daemon={thread.daemon})\n")
        lines.extend(traceback.format_stack(frames[thread.ident]))
    return "".join(lines)


def _watch(grace: float) -> None:
    time.sleep(grace)
    sys.stderr.write(f"\nexit_guard: the run has not ended {grace:.0f} s after pytest "
                     "finished; threads still alive:\n" + _stacks_of_other_threads())
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(_status[0])


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    threading.Thread(target=_watch, args=(EXIT_GRACE,), name="exit-guard", daemon=True).start()

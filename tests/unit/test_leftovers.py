"""Which processes the end-of-session check (``tests/leftovers.py``) counts as the tests':
children of pytest, orphans carrying this session's mark, unmarked ones on the tests'
settings and data folder; never another session's, a running portal's, or the machine's
shared daemons."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.leftovers import MARK, end, leftover_processes
from vdi.testing.processes import wait_for

SECONDS = "300"  # longer than the test: each sleep is ended by the test itself


def orphan(**env: str) -> int:
    """A ``sleep`` whose parent has already exited (as a daemonised or orphaned service's):
    its pid. ``env`` overrides entries of this process's environment ("" removes one)."""
    environ = {**os.environ, **env}
    environ = {key: value for key, value in environ.items() if value != ""}
    done = subprocess.run(["sh", "-c", f"sleep {SECONDS} >/dev/null 2>&1 & echo $!"],
                          env=environ, capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.fixture
def started() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def counted() -> dict[int, str]:
    return {leftover.pid: leftover.why for leftover in leftover_processes()}


def test_children_and_orphans_of_this_session_are_counted(started):
    child = subprocess.Popen(["sleep", SECONDS], start_new_session=True)
    started.append(child.pid)
    marked = orphan()
    started.append(marked)
    unmarked = orphan(**{MARK: "", "DJANGO_SETTINGS_MODULE": "tests.settings",
                         "VDI_DATA_DIR": str(settings.DATA_DIR)})
    started.append(unmarked)

    found = counted()
    assert found.get(child.pid) == "a child of pytest"
    assert found.get(marked) == "this session's mark"
    assert found.get(unmarked) == f"tests.settings on {settings.DATA_DIR}"
    by_test = {p.pid: p.started_by for p in leftover_processes()}
    assert by_test[marked] == os.environ["PYTEST_CURRENT_TEST"].rsplit(" (", 1)[0]

    assert not end([p for p in leftover_processes() if p.pid in started])  # SIGTERM sufficed
    child.wait(10)
    wait_for(lambda: not set(counted()) & set(started), 10, "the three to be gone")


def test_other_sessions_and_a_running_portal_are_not(started):
    other_session = orphan(**{MARK: "elsewhere", "DJANGO_SETTINGS_MODULE": "tests.settings"})
    started.append(other_session)
    other_folder = orphan(**{MARK: "", "DJANGO_SETTINGS_MODULE": "tests.settings",
                             "VDI_DATA_DIR": "/var/lib/vdi-portal/test-elsewhere"})
    started.append(other_folder)
    portal = orphan(**{MARK: "", "DJANGO_SETTINGS_MODULE": "portal.settings",
                       "VDI_DATA_DIR": str(settings.DATA_DIR)})
    started.append(portal)

    found = counted()
    assert not set(found) & set(started), found
    assert os.getpid() not in found and os.getppid() not in found, "nor pytest, nor its parent"

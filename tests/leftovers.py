"""Nothing the tests start outlives the session. At its end, after every fixture's teardown,
the processes the tests started that are still running are ended (SIGTERM, then SIGKILL),
and so are the libvirt domains of the tests' prefix (with their snapshot and checkpoint
metadata and their disks); when any was found, they are listed and the session fails.
Loaded by ``tests/conftest.py`` as a plugin.

A process is the tests' when it descends from this pytest process, or when its environment
(read from /proc, as root) carries this session's mark (``PORTAL_TEST_SESSION``, set here
for every process the tests start; not a ``VDI_`` variable, which some tests strip), or
carries ``DJANGO_SETTINGS_MODULE=tests.settings`` and this session's data folder with no mark
at all (from a test that built its environment afresh, or from an earlier run). A running
portal's processes have neither; another test session's carry its own mark. The machine's
shared daemons, which a set-up the tests run may start, are never ended. Domains are looked
at only when a test that boots guests ran (marked ``vm``, ``browser`` or ``desktop``): a unit
run needs no libvirtd."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings

from vdi.testing.processes import proc_stats

if TYPE_CHECKING:
    from vdi.hypervisor.driver import Driver

MARK = "PORTAL_TEST_SESSION"
GUEST_MARKERS = ("vm", "browser", "desktop")
# Started by the set-up (scripts/lib.sh) when missing, shared by every portal on the machine.
SHARED_DAEMONS = ("libvirtd", "virtlogd", "virtlockd", "redis-server")
SETTLE_SECONDS = 5  # for a process already on its way out (a browser closing) to end
GRACE_SECONDS = 10  # from SIGTERM to SIGKILL

used_guests = pytest.StashKey[bool]()


@dataclass
class Leftover:
    pid: int
    why: str
    command: str
    user: str
    started_by: str

    def __str__(self) -> str:
        by = f", started in {self.started_by}" if self.started_by else ""
        return f"process {self.pid} ({self.user}, {self.why}{by}): {self.command}"


def pytest_configure(config: pytest.Config) -> None:
    os.environ[MARK] = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    config.stash[used_guests] = False


def pytest_runtest_setup(item: pytest.Item) -> None:
    if any(item.get_closest_marker(name) for name in GUEST_MARKERS):
        item.config.stash[used_guests] = True


@pytest.hookimpl(trylast=True)  # after the runner's, which tears the session's fixtures down
def pytest_sessionfinish(session: pytest.Session) -> None:
    found: list[str] = []  # left behind: the session fails
    notes: list[str] = []  # could not be looked at: said only
    processes = leftover_processes()
    if processes:
        processes = settled(processes)
    if processes:
        killed = end(processes)
        found += [f"{p}: {'killed' if p.pid in killed else 'ended'}" for p in processes]
    if session.config.stash.get(used_guests, False):
        try:
            found += leftover_domains()
        except Exception as exc:  # libvirtd away: said, not a failure of the tests
            notes.append(f"The tests' libvirt domains could not be looked at: {exc}")
    if not found and not notes:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = notes + (["The tests left these behind (ended or removed now):", *found]
                     if found else [])
    if reporter is not None:
        reporter.write_line("")
        reporter.write_sep("=", "left behind by the tests" if found else "leftovers unchecked",
                           red=bool(found), yellow=not found, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
    if found and session.exitstatus in (pytest.ExitCode.OK,
                                        pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (entry.split(b"=", 1) for entry in raw.split(b"\0") if b"=" in entry)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def _read(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ").decode(
            errors="replace").strip()
    except OSError:
        return ""


def _user(pid: int) -> str:
    import pwd

    for line in _read(pid, "status").splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
            try:
                return pwd.getpwuid(uid).pw_name
            except KeyError:
                return str(uid)
    return "?"


def _shared_daemon(pid: int) -> bool:
    name = _read(pid, "comm")
    if name == "redis-server":  # the machine's (port 6379), not a test's private one
        return _read(pid, "cmdline").split(" ")[1:2] == ["127.0.0.1:6379"]
    return name in SHARED_DAEMONS


def leftover_processes() -> list[Leftover]:
    """The processes of this session's tests still running, with why each is counted."""
    me = os.getpid()
    mark = os.environ.get(MARK, "")
    data_dir = str(settings.DATA_DIR)
    parent: dict[int, int] = {}
    for pid, fields in proc_stats():
        if fields[0] not in ("Z", "X"):  # a zombie runs nothing; its parent reaps it
            parent[pid] = int(fields[1])
    ancestors = set()
    pid = me
    while pid in parent and pid not in ancestors:
        ancestors.add(pid)
        pid = parent[pid]

    def descends_from_me(pid: int) -> bool:
        seen = set()
        while pid in parent and pid not in seen:
            seen.add(pid)
            pid = parent[pid]
            if pid == me:
                return True
        return False

    found = []
    for pid in parent:
        if pid in ancestors or _shared_daemon(pid):
            continue
        environ = _environ(pid)
        if descends_from_me(pid):
            why = "a child of pytest"
        elif mark and environ.get(MARK) == mark:
            why = "this session's mark"
        elif (MARK not in environ and environ.get("DJANGO_SETTINGS_MODULE") == "tests.settings"
              and environ.get("VDI_DATA_DIR") == data_dir):
            why = f"tests.settings on {data_dir}"
        else:
            continue
        started_by = environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        found.append(Leftover(pid, why, _read(pid, "cmdline")[:160], _user(pid), started_by))
    return found


def _running(pid: int) -> bool:
    state = _read(pid, "stat").rsplit(")", 1)[-1].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def settled(processes: list[Leftover]) -> list[Leftover]:
    """Those of ``processes`` still running after a few seconds to end on their own."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while processes and time.monotonic() < deadline:
        time.sleep(0.2)
        processes = [p for p in processes if _running(p.pid)]
    return processes


def end(processes: list[Leftover]) -> set[int]:
    """SIGTERM, then SIGKILL to those still running after a grace: their pids."""
    for process in processes:
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(_running(p.pid) for p in processes):
        time.sleep(0.2)
    stubborn = {p.pid for p in processes if _running(p.pid)}
    for pid in stubborn:
        _signal(pid, signal.SIGKILL)
    return stubborn


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def leftover_domains() -> list[str]:
    """The test domains still defined on the tests' libvirt, each removed now."""
    from tests.vm_fixtures import domain_names, remove_test_domains
    from vdi.hypervisor import HypervisorError, get_driver

    names = domain_names(settings.DOMAIN_PREFIX)
    if not names:
        return []
    driver = get_driver(settings.LIBVIRT_URI)
    described = {name: _metadata(driver, name) for name in names}
    try:
        remove_test_domains()
        problem = ""
    except HypervisorError as exc:
        problem = f" ({exc})"
    still = set(domain_names(settings.DOMAIN_PREFIX))
    return [f"domain {name} ({described[name]}): "
            f"{f'could not be removed{problem}' if name in still else 'removed'}"
            for name in names]


def _metadata(driver: Driver, name: str) -> str:
    """The domain's state and how many snapshots and checkpoints libvirt records for it."""
    try:
        dom = driver.connection().lookupByName(name)
        running = "running" if dom.isActive() else "shut off"
        return (f"{running}, snapshots: {len(dom.listAllSnapshots())}, "
                f"checkpoints: {len(dom.listAllCheckpoints())}")
    except Exception as exc:  # a description only
        return f"not described: {exc}"

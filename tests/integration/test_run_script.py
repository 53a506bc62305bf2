"""``scripts/run`` as a newcomer runs it, on a data folder of its own: secrets private from
creation, QEMU's folders traversable, the services running as the unprivileged service user
against libvirtd's group socket and a Redis that wants a password; and Ctrl-C, or a SIGTERM to
the script alone, ends every process it started."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from tests.vm_fixtures import domain_names
from vdi.hypervisor import get_driver
from vdi.testing.processes import ROOT, free_port, listening, proc_stats, wait_for

pytestmark = pytest.mark.vm
# One run at a time per folder: a test session running beside another names its own, and
# gets a domain and Redis key prefix of its own with it (vdirun for the default folder).
DATA = Path(os.environ.get("VDI_TEST_RUNCHECK_DIR", "/var/lib/vdi-portal-runcheck"))
PREFIX = "vdirun" + "".join(c for c in DATA.name.removeprefix("vdi-portal-runcheck") if c.isalnum())
SERVICE_USER = "vdi-portal"
SERVICES = ("daphne", "manage.py spice_gateway", "celery -A portal worker",
            "celery -A portal beat")
# The machine's daemons, which the set-up starts when they are missing: they outlive a run.
SHARED = ("libvirtd", "virtlogd", "virtlockd", "redis-server")


def owner_and_mode(path: Path) -> tuple[str, int]:
    info = path.stat()
    return pwd.getpwuid(info.st_uid).pw_name, stat.S_IMODE(info.st_mode)


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid for {pid}")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def of_this_run(pid: int) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"VDI_DATA_DIR={DATA}".encode() in environ


def run_processes(script: int | None) -> list[int]:
    """Every process of a ``scripts/run`` on DATA that is still there (zombies aside): in the
    session of ``script`` (this test starts it in a session of its own), or with
    VDI_DATA_DIR=DATA in its environment (the services run in sessions of their own)."""
    found = []
    for pid, fields in proc_stats():
        if pid == os.getpid() or fields[0] == "Z":
            continue
        if (script is not None and int(fields[3]) == script) or of_this_run(pid):
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name not in SHARED:
                found.append(pid)
    return found


def described(pids: list[int]) -> str:
    return "; ".join(f"{pid} {cmdline(pid)[:80]}" for pid in pids) or "nothing"


def terminal_signals() -> None:
    """A terminal's shell starts a foreground command with SIGINT and SIGQUIT at their
    defaults, even when this test runs with them ignored (pytest started in the background)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def remove_run_domains() -> None:
    driver = get_driver(settings.LIBVIRT_URI)
    for name in domain_names(PREFIX):
        driver.undefine(name)


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    left = run_processes(None)
    assert not left, f"an earlier scripts/run on {DATA} left: {described(left)}"
    shutil.rmtree(DATA, ignore_errors=True)
    port = free_port()
    log = tmp_path / "run.log"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL") and not key.startswith("VDI_")}
    env.update(VDI_DATA_DIR=str(DATA), VDI_KERNEL_DIR=str(settings.KERNEL_DIR),
               VDI_PORT=str(port), VDI_HOST_NAME="runcheck", VDI_DOMAIN_PREFIX=PREFIX,
               VDI_REDIS_KEY_PREFIX=PREFIX,
               VDI_DEMO_DESKTOP_IMAGE="false",  # the desktop tier builds (and boots) it
               VDI_DOMAIN_TYPE="qemu",  # and a SPICE gateway port of its own, as the web's
               VDI_SPICE_GATEWAY_LISTEN=f"127.0.0.1:{free_port()}")
    process = subprocess.Popen(["bash", str(ROOT / "scripts" / "run")], cwd=ROOT, env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=terminal_signals)
    try:
        wait_for(lambda: b"Portal on http" in log.read_bytes() or process.poll() is not None,
                 300, "scripts/run to start the portal")
        assert process.poll() is None, log.read_text()[-3000:]
        yield process, log, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
        for pid in run_processes(process.pid):  # a failed test leaves nothing either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_run_domains()
        shutil.rmtree(DATA, ignore_errors=True)


def test_scripts_run_keeps_secrets_private_and_runs_unprivileged(portal):
    process, log, port = portal
    service_uid = pwd.getpwnam(SERVICE_USER).pw_uid
    secrets = DATA / "secrets"

    assert owner_and_mode(DATA) == ("root", 0o755)
    for folder in ("images", "disks", "logs"):
        assert owner_and_mode(DATA / folder) == (SERVICE_USER, 0o755), folder
    assert owner_and_mode(secrets) == (SERVICE_USER, 0o700)
    for name in ("secret_key", "portal.sqlite3", "demo-credentials.txt"):
        assert owner_and_mode(secrets / name) == (SERVICE_USER, 0o600), name
    assert not list(DATA.glob("*.sqlite3")) and not (DATA / "secret_key").exists(), \
        "no secret outside the secrets folder"
    assert owner_and_mode(Path("/etc/vdi-portal/redis_password")) == ("root", 0o600)

    running = wait_for(lambda: len(s := services(process)) == len(SERVICES) and s, 120,
                       "the four services")
    assert set(running.values()) == {service_uid}, running

    import urllib.request

    wait_for(lambda: listening(port), 60, "daphne to listen")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"http://127.0.0.1:{port}/", timeout=10)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302 and "/accounts/login/" in answer.headers["Location"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5).ping()
    import grp

    socket = Path("/run/libvirt/libvirt-sock").stat()
    assert (grp.getgrgid(socket.st_gid).gr_name, stat.S_IMODE(socket.st_mode)) == (
        "libvirt", 0o770), "libvirtd runs with the project's configuration"

    # the demo's warm desktop boots through the worker, as the service user
    log_file = wait_for(lambda: next(iter((DATA / "logs").glob(f"{PREFIX}-*.log")), None), 180,
                        "the warm desktop's serial log")
    assert owner_and_mode(log_file)[0] == SERVICE_USER, "the worker owns (and reads) its logs"

    # Ctrl-C, as a terminal sends it: SIGINT to the script's process group
    os.killpg(process.pid, signal.SIGINT)
    wait_for(lambda: process.poll() is not None, 60, "scripts/run to end after Ctrl-C")
    assert process.returncode == 130, log.read_text()[-3000:]
    wait_for(lambda: not run_processes(process.pid), 60, "every process of the run to end")
    assert not listening(port), "the port is free for the next run"


def services(process: subprocess.Popen[bytes]) -> dict[str, int]:
    """The services of the run now, by name: the uid each runs as."""
    found = {}
    for pid in run_processes(process.pid):
        line = cmdline(pid)
        for name in SERVICES:
            if name in line:
                found[name] = uid_of(pid)
    return found


def test_a_sigterm_to_the_script_alone_ends_every_process_of_the_run(portal):
    process, log, port = portal
    wait_for(lambda: len(services(process)) == len(SERVICES), 120, "the four services")
    wait_for(lambda: listening(port), 60, "daphne to listen")
    started = run_processes(process.pid)
    assert len(started) > len(SERVICES), described(started)  # their pools, the prefixers

    os.kill(process.pid, signal.SIGTERM)
    wait_for(lambda: process.poll() is not None, 60, "scripts/run to end after SIGTERM")
    assert process.returncode == 143, log.read_text()[-3000:]
    wait_for(lambda: not run_processes(process.pid), 60, "every process of the run to end")
    assert b"Stopping" in log.read_bytes()

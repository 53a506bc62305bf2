"""``scripts/run`` as a newcomer runs it, on a data folder of its own: secrets private from
creation, QEMU's folders traversable, the three services running as the unprivileged service
user against libvirtd's group socket and a Redis that wants a password."""

from __future__ import annotations

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

from vdi.hypervisor import get_driver
from vdi.testing.processes import ROOT, free_port, proc_stats, wait_for

pytestmark = pytest.mark.vm
DATA = Path("/var/lib/vdi-portal-runcheck")
PREFIX = "vdirun"
SERVICE_USER = "vdi-portal"


def owner_and_mode(path: Path) -> tuple[str, int]:
    info = path.stat()
    return pwd.getpwuid(info.st_uid).pw_name, stat.S_IMODE(info.st_mode)


def group_of(pid: int) -> list[int]:
    return [member for member, fields in proc_stats() if int(fields[2]) == pid]  # its group


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


def remove_run_domains() -> None:
    driver = get_driver(settings.LIBVIRT_URI)
    for info in driver.list_domains():
        if info.name.startswith(PREFIX + "-"):
            driver.undefine(info.name)


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    shutil.rmtree(DATA, ignore_errors=True)
    port = free_port()
    log = tmp_path / "run.log"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL") and not key.startswith("VDI_")}
    env.update(VDI_DATA_DIR=str(DATA), VDI_KERNEL_DIR=str(settings.KERNEL_DIR),
               VDI_PORT=str(port), VDI_HOST_NAME="runcheck", VDI_DOMAIN_PREFIX=PREFIX,
               VDI_DOMAIN_TYPE="qemu")
    process = subprocess.Popen(["bash", str(ROOT / "scripts" / "run")], cwd=ROOT, env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(lambda: b"Portal on http" in log.read_bytes() or process.poll() is not None,
                 300, "scripts/run to start the portal")
        assert process.poll() is None, log.read_text()[-3000:]
        yield process, log, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
        remove_run_domains()
        shutil.rmtree(DATA, ignore_errors=True)


def test_scripts_run_keeps_secrets_private_and_runs_unprivileged(portal):
    process, _log, port = portal
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

    def services() -> dict[str, int]:
        found = {}
        for pid in group_of(process.pid):
            line = cmdline(pid)
            for name in ("daphne", "celery -A portal worker", "celery -A portal beat"):
                if name in line:
                    found[name] = uid_of(pid)
        return found

    running = wait_for(lambda: len(s := services()) == 3 and s, 120, "the three services")
    assert set(running.values()) == {service_uid}, running

    import socket as sockets
    import urllib.request

    def listening() -> bool:
        try:
            sockets.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_for(listening, 60, "daphne to listen")

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

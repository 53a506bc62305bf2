"""The Debian desktop: claim to a graphical session, its disk per desktop, its build.

1. Claim -> ready (the guest agent answers and the session's process, IceWM, runs for the
   user), through the service, Celery, the worker and its guest watcher; against
   ``virsh start`` of the same domain XML, asked the same two questions through
   ``virsh qemu-agent-command``.
2. Disk used per desktop after its first boot (the linked clone's growth) against a full
   copy of the image.
3. The image build (``--build``: a few minutes): the recipe into an empty cache folder,
   against plain ``mmdebstrap`` of the same package list to a tarball.

Usage: .venv/bin/python bench/desktop_boot.py [--runs 2] [--build]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup_django import configure  # noqa: E402

configure()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.peers import define_with_virsh  # noqa: E402
from vdi.choices import DesktopStatus  # noqa: E402
from vdi.hypervisor import get_driver  # noqa: E402
from vdi.hypervisor.files import LocalFiles  # noqa: E402
from vdi.images import builds  # noqa: E402
from vdi.images.desktop import build as recipe  # noqa: E402
from vdi.models import Desktop, Pool  # noqa: E402
from vdi.services.claims import claim_desktop  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.testing.processes import WorkerProcess, wait_for  # noqa: E402
from vdi.worker.specs import (  # noqa: E402
    hostname,
    seed_path,
)


def prepare() -> tuple[Pool, User]:
    call_command("migrate", verbosity=0)
    ensure_local_host()
    version = builds.build(builds.DESKTOP_IMAGE, lambda p, s: None)
    pool, _ = Pool.objects.update_or_create(name="Desktop bench", defaults={
        "image": version.image, "assignment": "automatic", "min_ready": 0, "max_size": 3,
        "vcpus": 2, "memory_mib": 1024})
    user, _ = User.objects.get_or_create(username="bench-desktop")
    pool.users.add(user)
    for left in Desktop.objects.filter(pool=pool):  # an interrupted run's
        remove(left)
    return pool, user


def actual_bytes(path: Path) -> int:
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], check=True,
                          capture_output=True, text=True).stdout
    return int(json.loads(info)["actual-size"])


def remove(desktop: Desktop) -> None:
    get_driver(settings.LIBVIRT_URI).undefine(
        desktop.domain_name, (Path(desktop.disk_path), seed_path(desktop)))
    Path(desktop.serial_log_path).unlink(missing_ok=True)
    Desktop.objects.filter(pk=desktop.pk).delete()


def portal_claim(pool: Pool, user: User) -> tuple[float, int]:
    """Seconds from the claim to ready; the desktop's disk growth after that first boot."""
    start = time.perf_counter()
    desktop = claim_desktop(user, pool)

    def ready() -> bool:
        desktop.refresh_from_db()
        if desktop.status == DesktopStatus.ERROR:
            raise RuntimeError(desktop.last_error)
        return desktop.guest_ready_at is not None

    wait_for(ready, 420, "the session to be ready", every=0.2)
    elapsed = time.perf_counter() - start
    grown = actual_bytes(Path(desktop.disk_path))
    remove(desktop)
    return elapsed, grown


def agent(name: str, command: dict[str, object]) -> dict[str, object] | None:
    done = subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, "qemu-agent-command", name,
                           json.dumps(command)], capture_output=True, text=True)
    return json.loads(done.stdout)["return"] if done.returncode == 0 else None


def session_runs(name: str) -> bool:
    if agent(name, {"execute": "guest-ping"}) is None:
        return False
    started = agent(name, {"execute": "guest-exec", "arguments": {
        "path": "pgrep", "arg": ["-x", recipe.SESSION_PROCESS]}})
    if started is None:
        return False
    for _ in range(50):
        status = agent(name, {"execute": "guest-exec-status",
                              "arguments": {"pid": started["pid"]}})
        if status and status.get("exited"):
            return status.get("exitcode") == 0
        time.sleep(0.1)
    return False


def virsh_start(pool: Pool) -> float:
    """The same image and XML (seed included), started with virsh; ready asked the same way."""
    version = pool.image.latest_ready_version()
    assert version is not None
    desktop = Desktop(pool=pool, host=ensure_local_host(), image_version=version, pk=0,
                      domain_name=f"vdibench-peer-{time.time_ns()}", vcpus=2, memory_mib=1024)

    def seed_and_log() -> None:
        files = LocalFiles()
        files.create_seed(seed_path(desktop), hostname(desktop), desktop.domain_name)
        files.prepare_log(Path(desktop.serial_log_path))

    define_with_virsh(desktop, seed_and_log)
    start = time.perf_counter()
    subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, "start", desktop.domain_name],
                   check=True, capture_output=True)
    wait_for(lambda: session_runs(desktop.domain_name), 420, "the peer's session", every=0.2)
    elapsed = time.perf_counter() - start
    get_driver(settings.LIBVIRT_URI).undefine(
        desktop.domain_name, (Path(desktop.disk_path), seed_path(desktop)))
    Path(desktop.serial_log_path).unlink(missing_ok=True)
    return elapsed


def build_times() -> tuple[float, float]:
    """The recipe into an empty folder, and plain mmdebstrap of the same packages."""
    with tempfile.TemporaryDirectory(prefix="vdi-bench-build-", dir=settings.DATA_DIR) as tmp:
        start = time.perf_counter()
        recipe.build_desktop_image(Path(tmp) / "ours", lambda p, s: None)
        ours = time.perf_counter() - start
        mode = "root" if os.geteuid() == 0 else "unshare"
        start = time.perf_counter()
        subprocess.run(["mmdebstrap", "--variant=minbase", f"--mode={mode}", "-q",
                        "--aptopt=Apt::Install-Recommends \"false\"",
                        f"--include={','.join(recipe.PACKAGES)}", recipe.SUITE,
                        str(Path(tmp) / "plain.tar"), str(recipe.SOURCES)], check=True)
        plain = time.perf_counter() - start
    return ours, plain


def table(title: str, rows: list[tuple[str, float, float]], unit: str) -> None:
    print(f"\n{title}")
    print(f"| what | {unit} | x peer |\n|---|---|---|")
    for name, value, peer in rows:
        print(f"| {name} | {value:,.1f} | {value / peer:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--build", action="store_true", help="also time the image build")
    options = parser.parse_args()
    pool, user = prepare()
    worker = WorkerProcess(settings.DATA_DIR / "bench-worker.log")
    worker.start()
    claims, growth, peers = [], [], []
    try:
        for _ in range(options.runs):
            seconds, grown = portal_claim(pool, user)
            claims.append(seconds)
            growth.append(grown)
            peers.append(virsh_start(pool))
    finally:
        worker.stop()
    version = pool.image.latest_ready_version()
    assert version is not None
    full_copy = actual_bytes(Path(version.disk_path))
    peer = statistics.median(peers)
    table(f"desktop boot: median of {options.runs} under domain type "
          f"{ensure_local_host().resolved_domain_type or settings.DOMAIN_TYPE}; peer = virsh "
          "start of the same XML, ready asked through virsh qemu-agent-command",
          [("claim -> agent and session ready (portal)", statistics.median(claims), peer),
           ("virsh start -> agent and session ready", peer, peer)], "seconds")
    mib = 1024**2
    table("disk per desktop after its first boot; peer = a full copy of the image",
          [("linked clone (overlay) growth", statistics.median(growth) / mib, full_copy / mib),
           ("full copy", full_copy / mib, full_copy / mib)], "MiB")
    if options.build:
        ours, plain = build_times()
        table("image build from Debian's packages; peer = plain mmdebstrap of the same "
              "packages to a tarball", [("build_image debian-desktop", ours, plain),
                                        ("mmdebstrap", plain, plain)], "seconds")


if __name__ == "__main__":
    main()

"""Claim to first screen: a warm pool, a cold pool, and plain ``virsh start`` as the peer.

Each path ends when the first FramebufferUpdate arrives: for the portal through the console
(ticket, websocket through daphne, RFB handshake), for the peer straight from QEMU's VNC port
after ``virsh start`` of the same domain XML. Usage: .venv/bin/python bench/claim.py [--runs 3]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup_django import configure  # noqa: E402

configure()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from websockets.sync.client import connect  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from bench.peers import define_with_virsh  # noqa: E402
from vdi.choices import DesktopStatus  # noqa: E402
from vdi.hypervisor import get_driver  # noqa: E402
from vdi.images.tiny import READY_MARKER  # noqa: E402
from vdi.models import Desktop, GoldenImage, Pool  # noqa: E402
from vdi.services.capacity import maintain  # noqa: E402
from vdi.services.claims import claim_desktop  # noqa: E402
from vdi.services.console import issue_ticket  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.testing.processes import ServerProcess, WorkerProcess, wait_for  # noqa: E402
from vdi.testing.rfb import Stream, first_update, handshake  # noqa: E402


def pools() -> tuple[Pool, Pool, User, str]:
    call_command("migrate", verbosity=0)
    call_command("build_tiny_image", "--if-missing", verbosity=0)
    ensure_local_host()
    image = GoldenImage.objects.get(name="tiny")
    Pool.objects.filter(name__startswith="Claim bench").update(min_ready=0, enabled=False)
    warm, _ = Pool.objects.update_or_create(
        name="Claim bench warm", defaults={"image": image, "assignment": "automatic",
                                           "min_ready": 1, "max_size": 5, "enabled": True})
    cold, _ = Pool.objects.update_or_create(
        name="Claim bench cold", defaults={"image": image, "assignment": "automatic",
                                           "min_ready": 0, "max_size": 5, "enabled": True})
    user, _ = User.objects.get_or_create(username="bench-claim")
    for pool in (warm, cold):  # a grant, as any user needs (staff gives nothing since #9)
        pool.users.add(user)
    client = Client()
    client.force_login(user)
    return warm, cold, user, str(client.cookies["sessionid"].value)


def first_screen_through_portal(server: ServerProcess, desktop: Desktop, user: User,
                                session: str) -> None:
    ticket = issue_ticket(user, session, desktop).ticket
    with connect(f"ws://127.0.0.1:{server.port}/ws/desktops/{desktop.pk}/console/",
                 subprotocols=[Subprotocol("binary"), Subprotocol(f"vdi-ticket.{ticket}")],
                 additional_headers={"Origin": server.origin, "Cookie": f"sessionid={session}"},
                 max_size=None) as ws:
        stream = Stream(lambda: ws.recv(timeout=60), ws.send)  # type: ignore[arg-type,return-value]
        first_update(stream, handshake(stream))


def wait_running(desktop: Desktop) -> None:
    def running() -> bool:
        desktop.refresh_from_db()
        if desktop.status == DesktopStatus.ERROR:
            raise RuntimeError(desktop.last_error)
        return desktop.status == DesktopStatus.RUNNING

    wait_for(running, 180, "the desktop to run", every=0.02)


def claim_to_screen(pool: Pool, user: User, session: str, server: ServerProcess) -> float:
    start = time.perf_counter()
    desktop = claim_desktop(user, pool)
    wait_running(desktop)
    first_screen_through_portal(server, desktop, user, session)
    elapsed = time.perf_counter() - start
    desktop.refresh_from_db()
    get_driver(settings.LIBVIRT_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))
    Desktop.objects.filter(pk=desktop.pk).delete()
    return elapsed


def warm_up(pool: Pool) -> None:
    maintain(pool)
    for desktop in Desktop.objects.filter(pool=pool, owner__isnull=True):
        wait_running(desktop)
        wait_booted(desktop)


def wait_booted(desktop: Desktop) -> None:
    wait_for(lambda: READY_MARKER in _log(desktop), 120, "the warm desktop to boot")


def _log(desktop: Desktop) -> str:
    path = Path(desktop.serial_log_path)
    return path.read_text(errors="replace") if path.exists() else ""


def virsh_start_to_screen(pool: Pool, user: User) -> float:
    """The same image and XML, created and started with virsh, first update from QEMU."""
    version = pool.image.latest_ready_version()
    assert version is not None
    desktop = Desktop(pool=pool, host=ensure_local_host(), image_version=version,
                      domain_name=f"vdibench-peer-{time.time_ns()}", vcpus=1, memory_mib=256)
    define_with_virsh(desktop)
    start = time.perf_counter()
    subprocess.run(["virsh", "-c", settings.LIBVIRT_URI, "start", desktop.domain_name],
                   check=True, capture_output=True)
    endpoint = get_driver(settings.LIBVIRT_URI).vnc_endpoint(desktop.domain_name)
    assert endpoint is not None
    with socket.create_connection((endpoint.host, endpoint.port)) as vnc:
        stream = Stream(lambda: vnc.recv(65536), vnc.sendall)
        first_update(stream, handshake(stream))
    elapsed = time.perf_counter() - start
    get_driver(settings.LIBVIRT_URI).undefine(desktop.domain_name, (Path(desktop.disk_path),))
    return elapsed


def cleanup(*bench_pools: Pool) -> None:
    driver = get_driver(settings.LIBVIRT_URI)
    for pool in bench_pools:
        pool.min_ready = 0
        pool.save()
        for desktop in Desktop.objects.filter(pool=pool):
            driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))
            desktop.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    warm, cold, user, session = pools()
    worker = WorkerProcess(settings.DATA_DIR / "bench-worker.log")
    server = ServerProcess(settings.DATA_DIR / "bench-daphne.log")
    worker.start()
    server.start()
    results: dict[str, list[float]] = {"warm claim": [], "cold claim": [], "virsh start": []}
    try:
        for _ in range(runs):
            warm_up(warm)
            results["warm claim"].append(claim_to_screen(warm, user, session, server))
            results["cold claim"].append(claim_to_screen(cold, user, session, server))
            results["virsh start"].append(virsh_start_to_screen(cold, user))
    finally:
        server.stop()
        worker.stop()
        cleanup(warm, cold)
    peer = statistics.median(results["virsh start"])
    print(f"\nclaim benchmark: median of {runs}, claim -> first framebuffer update; "
          "peer = virsh start -> first update from QEMU's VNC")
    print("| path        | seconds | x peer |")
    print("|-------------|---------|--------|")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"| {name:<11} | {value:7.3f} | {value / peer:6.2f} |")


if __name__ == "__main__":
    main()

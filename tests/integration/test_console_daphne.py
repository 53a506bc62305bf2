"""The console through a real daphne process: a real guest's RFB handshake, a slow browser."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django.test import Client
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.support import wait_status
from vdi.choices import DesktopStatus
from vdi.models import Desktop
from vdi.services.console import issue_ticket
from vdi.services.desktops import create_desktop
from vdi.testing.processes import ServerProcess, wait_for
from vdi.testing.rfb import Stream, handshake

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def daphne(transactional_db, tmp_path):
    server = ServerProcess(tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()


def sign_in(user) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies["sessionid"].value)


def open_console(server: ServerProcess, desktop: Desktop, session: str, ticket: str):
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/desktops/{desktop.pk}/console/",
        subprotocols=[Subprotocol("binary"), Subprotocol(f"vdi-ticket.{ticket}")],
        additional_headers={"Origin": server.origin, "Cookie": f"sessionid={session}"},
        open_timeout=10, max_size=None,
    )


def test_ticket_reaches_a_real_guest_screen_through_daphne(worker, daphne, tiny_pool, owner):
    desktop = create_desktop(owner, tiny_pool)
    wait_status(desktop, DesktopStatus.RUNNING)
    session = sign_in(owner)
    ticket = issue_ticket(owner, session, desktop).ticket
    with open_console(daphne, desktop, session, ticket) as ws:
        assert ws.subprotocol == "binary"
        init = handshake(Stream(lambda: ws.recv(timeout=10), ws.send))
    assert 320 <= init.width <= 4096 and 200 <= init.height <= 4096
    assert init.bits_per_pixel in (8, 16, 32)
    log = daphne.log.read_text()
    assert "WSCONNECT" in log and ticket not in log, "the ticket never reaches the access log"


def test_a_browser_that_stops_reading_does_not_grow_daphne(daphne, owner, tiny_pool, vm_host,
                                                          tiny_version):
    """A fast source behind a non-reading browser: the source is held back by TCP."""
    total, sent = 256 * 1024 * 1024, 0
    source = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pour() -> None:
        nonlocal sent
        connection, _ = source.accept()
        connection.settimeout(0.5)
        block = b"\x55" * 65536
        while sent < total and not stop.is_set():
            try:
                sent += connection.send(block)
            except TimeoutError:
                continue
            except OSError:
                break
        connection.close()

    feeder = threading.Thread(target=pour, daemon=True)
    feeder.start()
    desktop = Desktop.objects.create(
        owner=owner, pool=tiny_pool, host=vm_host, image_version=tiny_version,
        domain_name="vditest-slow", disk_path="/nonexistent", serial_log_path="/nonexistent",
        vcpus=1, memory_mib=256, status=DesktopStatus.RUNNING, vnc_host="127.0.0.1",
        vnc_port=source.getsockname()[1],
    )
    session = sign_in(owner)
    before = daphne.rss_kib()
    with open_console(daphne, desktop, session, issue_ticket(owner, session, desktop).ticket):
        time.sleep(1)
        wait_for(lambda: sent > 0, 10, "the source to start pouring")
        time.sleep(3)  # the browser reads nothing meanwhile
        growth_mib = (daphne.rss_kib() - before) / 1024
        held_back = sent
    stop.set()
    source.close()
    assert held_back < 64 * 1024 * 1024, f"{held_back} bytes left the source: not held back"
    assert growth_mib < 48, f"daphne grew by {growth_mib:.0f} MiB with a non-reading browser"

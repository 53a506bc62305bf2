"""Native SPICE clients: the .vv file points remote-viewer at the portal's gateway (HTTP
CONNECT, then SPICE), its password is a single-use ticket that expires within a minute, and
no hypervisor address or password is in it. A client speaking SPICE's link as remote-viewer
does goes through the real gateway process to QEMU's real SPICE server."""

from __future__ import annotations

import configparser
import json
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from vdi.choices import DisplayProtocol
from vdi.console.spice_link import Channel, LinkError
from vdi.models import ConsoleTicket, Desktop, Pool
from vdi.testing.processes import ServerProcess, wait_for
from vdi.testing.spice_client import http_connect, link, main_session_id
from vdi.testing.spice_server import SpiceServer, spice_server

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def qemu_spice() -> Iterator[SpiceServer]:
    with spice_server() as server:
        yield server


@pytest.fixture
def gateway(transactional_db: None, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "gateway.log", server="spice_gateway")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def spice_desktop(running_desktop: Desktop, qemu_spice: SpiceServer) -> Desktop:
    Desktop.objects.filter(pk=running_desktop.pk).update(
        display_protocol=DisplayProtocol.SPICE, vnc_port=qemu_spice.port,
        vnc_password=qemu_spice.password)
    running_desktop.refresh_from_db()
    return running_desktop


def download_vv(user, desktop: Desktop, gateway: ServerProcess, settings) -> dict[str, str]:
    settings.SPICE_PROXY_URL = gateway.origin
    client = Client()
    client.force_login(user)
    response = client.post(reverse("desktop-console-vv", args=[desktop.pk]))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-virt-viewer"
    assert response["Cache-Control"] == "no-store"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(response.content.decode())
    return dict(parser["virt-viewer"])


def channel(vv: dict[str, str], kind: int, connection_id: int = 0,
            source: str = "127.0.0.1") -> tuple[socket.socket, int]:
    """One channel as remote-viewer opens it: CONNECT through proxy=, then SPICE's link."""
    host, port = vv["proxy"].removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    http_connect(sock, f"{vv['host']}:{vv['port']}")
    return sock, link(sock, kind, vv["password"], connection_id)


def test_the_vv_file_names_the_portal_not_the_hypervisor(owner, spice_desktop, qemu_spice,
                                                         gateway, settings):
    vv = download_vv(owner, spice_desktop, gateway, settings)
    assert vv["type"] == "spice" and vv["proxy"] == gateway.origin
    assert vv["host"] == f"desktop-{spice_desktop.pk}.spice"
    text = "\n".join(vv.values())
    assert qemu_spice.password not in text and str(qemu_spice.port) not in text
    ticket = ConsoleTicket.objects.get(native=True)
    assert ticket.expires_at <= timezone.now() + timedelta(seconds=60), "within a minute"


GLIB_READER = """
import json, sys
from gi.repository import GLib
data = sys.stdin.read()
keys = GLib.KeyFile()
keys.load_from_data(data, len(data.encode()), GLib.KeyFileFlags.NONE)
names = list(keys.get_keys("virt-viewer")[0])
def value(name):
    try:
        return keys.get_string("virt-viewer", name)
    except GLib.Error as error:
        return "unreadable: " + error.message
print(json.dumps({"keys": names, "values": {name: value(name) for name in names}}))
"""


def read_as_remote_viewer(text: str) -> tuple[list[str], dict[str, str]]:
    """The .vv as GLib's key-file parser (remote-viewer's) reads it, in Debian's own Python
    (the virtualenv has no gi): its keys in order, a key given twice listed twice, and each
    key's value (the later one wins)."""
    done = subprocess.run(["/usr/bin/python3", "-c", GLIB_READER], input=text, text=True,
                          capture_output=True, timeout=60, check=True)
    read = json.loads(done.stdout)
    return read["keys"], read["values"]


def test_a_pool_name_with_line_breaks_stays_the_title_for_remote_viewer(owner,
                                                                        running_desktop,
                                                                        settings):
    name = (" Sales\\Office\nproxy=http://192.0.2.66\nhost=evil.example\r\n"  # 100 at most
            "[virt-viewer]\nproxy=http://192.0.2.66\tdone")
    Pool.objects.filter(pk=running_desktop.pool_id).update(name=name)  # past the validator
    Desktop.objects.filter(pk=running_desktop.pk).update(display_protocol=DisplayProtocol.SPICE)
    settings.SPICE_PROXY_URL = "http://portal.example:8001"
    client = Client()
    client.force_login(owner)
    response = client.post(reverse("desktop-console-vv", args=[running_desktop.pk]))
    assert response.status_code == 200, response.content
    keys, values = read_as_remote_viewer(response.content.decode())
    assert keys.count("proxy") == 1 and keys.count("host") == 1, keys
    assert values["proxy"] == "http://portal.example:8001"
    assert values["host"] == f"desktop-{running_desktop.pk}.spice"
    assert values["title"] == f"{name} #{running_desktop.pk} - %d", "read back as it is"


def test_the_vv_password_opens_one_session_then_never_again(owner, spice_desktop, gateway,
                                                            settings):
    vv = download_vv(owner, spice_desktop, gateway, settings)
    main, result = channel(vv, Channel.MAIN)
    assert result == LinkError.OK
    session_id = main_session_id(main)
    inputs, result = channel(vv, Channel.INPUTS, session_id)
    assert result == LinkError.OK, "the session's other channels join with the same password"
    _elsewhere, result = channel(vv, Channel.INPUTS, session_id, source="127.0.0.2")
    assert result == LinkError.PERMISSION_DENIED, "not from another address"
    _again, result = channel(vv, Channel.MAIN)
    assert result == LinkError.PERMISSION_DENIED, "a second session with the same password"
    main.close()
    inputs.close()
    wait_for(lambda: ConsoleTicket.objects.filter(ended_at__isnull=False).exists(), 10,
             "the session to end with its main channel")
    _late, result = channel(vv, Channel.INPUTS, session_id)
    assert result == LinkError.PERMISSION_DENIED, "nothing joins an ended session"


def test_an_unused_vv_password_expires(owner, spice_desktop, gateway, settings):
    vv = download_vv(owner, spice_desktop, gateway, settings)
    ConsoleTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    _main, result = channel(vv, Channel.MAIN)
    assert result == LinkError.PERMISSION_DENIED


def test_tickets_do_not_cross_between_browser_and_native_clients(owner, spice_desktop, gateway,
                                                                 settings):
    from tests.console_helpers import session_cookie, ticket_for

    browser_ticket = ticket_for(owner, session_cookie(owner), spice_desktop)
    vv = download_vv(owner, spice_desktop, gateway, settings)
    _main, result = channel({**vv, "password": browser_ticket}, Channel.MAIN)
    assert result == LinkError.PERMISSION_DENIED


def test_only_spice_desktops_and_their_users_get_a_vv(owner, outsider, spice_desktop, settings):
    url = reverse("desktop-console-vv", args=[spice_desktop.pk])
    client = Client()
    client.force_login(outsider)
    assert client.post(url).status_code == 404
    Desktop.objects.filter(pk=spice_desktop.pk).update(display_protocol=DisplayProtocol.VNC)
    client.force_login(owner)
    response = client.post(url)
    assert response.status_code == 409 and b"SPICE pool" in response.content
    assert client.get(url).status_code == 405, "a ticket is only made on POST (with CSRF)"


def test_the_gateway_refuses_what_is_not_a_desktop_connect(gateway):
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
    with pytest.raises(ConnectionError, match="400"):
        http_connect(sock, "example.org:443")


def test_an_anonymous_link_without_a_vv_never_reaches_qemu(running_desktop, gateway):
    """No .vv password waits for the desktop: the gateway refuses the link itself, and the
    desktop's SPICE server (here a listener counting connections) is never connected to."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    Desktop.objects.filter(pk=running_desktop.pk).update(
        display_protocol=DisplayProtocol.SPICE, vnc_port=listener.getsockname()[1])
    vv = {"proxy": gateway.origin, "host": f"desktop-{running_desktop.pk}.spice", "port": "5900",
          "password": "guessed"}
    with listener:
        for kind in (Channel.MAIN, Channel.INPUTS):
            _sock, result = channel(vv, kind)
            assert result == LinkError.PERMISSION_DENIED
        with pytest.raises(TimeoutError):
            listener.accept()

"""The console page, its ticket endpoint and its diagnosis, for each persona."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.support import signed_in
from vdi.choices import DesktopStatus
from vdi.models import ConsoleTicket, Desktop
from vdi.services.console import digest


def test_owner_gets_a_single_use_ticket_bound_to_the_session(owner, running_desktop):
    client = signed_in(owner)
    response = client.post(reverse("desktop-console-ticket", args=[running_desktop.pk]))
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == f"/ws/desktops/{running_desktop.pk}/console/"
    assert body["expires_in"] == 30
    assert response["Cache-Control"] == "no-store"
    ticket = ConsoleTicket.objects.get()
    assert ticket.token_hash == digest(body["ticket"]), "only the hash is stored"
    assert body["ticket"] not in str(ConsoleTicket.objects.values_list())
    assert ticket.session_hash == digest(str(client.session.session_key))
    assert ticket.user == owner and ticket.desktop == running_desktop and ticket.used_at is None
    assert 25 <= (ticket.expires_at - ticket.created_at).total_seconds() <= 31


def test_ticket_needs_csrf(owner, running_desktop):
    response = signed_in(owner, csrf=True).post(
        reverse("desktop-console-ticket", args=[running_desktop.pk]))
    assert response.status_code == 403
    assert not ConsoleTicket.objects.exists()


def test_get_is_not_allowed_for_tickets(owner, running_desktop):
    response = signed_in(owner).get(reverse("desktop-console-ticket", args=[running_desktop.pk]))
    assert response.status_code == 405


@pytest.mark.parametrize("persona", ["outsider", "disabled_user"])
def test_others_get_no_ticket_and_no_page(request, running_desktop, persona):
    client = Client()
    client.force_login(request.getfixturevalue(persona))
    ticket = client.post(reverse("desktop-console-ticket", args=[running_desktop.pk]))
    page = client.get(reverse("desktop-console", args=[running_desktop.pk]))
    assert ticket.status_code in (302, 404) and page.status_code in (302, 404)
    assert not ConsoleTicket.objects.exists()


def test_anonymous_is_sent_to_sign_in(running_desktop):
    response = Client().get(reverse("desktop-console", args=[running_desktop.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_admin_gets_a_ticket_for_any_desktop(admin_user, running_desktop):
    url = reverse("desktop-console-ticket", args=[running_desktop.pk])
    response = signed_in(admin_user).post(url)
    assert response.status_code == 200 and len(response.json()["ticket"]) >= 40
    ticket = ConsoleTicket.objects.get()
    assert (ticket.user, ticket.desktop) == (admin_user, running_desktop)
    assert ticket.token_hash == hashlib.sha256(response.json()["ticket"].encode()).hexdigest()


def test_stopped_desktop_gets_no_ticket_and_a_reason(owner, running_desktop):
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.STOPPED)
    response = signed_in(owner).post(reverse("desktop-console-ticket", args=[running_desktop.pk]))
    assert response.status_code == 409
    assert response.json()["error"] == "The desktop is not running (it is stopped)."


def test_console_page_loads_one_bundle_with_a_hashed_name_cached_for_good(owner, running_desktop):
    url = reverse("desktop-console", args=[running_desktop.pk])
    page = signed_in(owner).get(url).content.decode()
    bundle = re.search(r'<script type="module" src="(/static/vdi/console\.[0-9a-f]{12}\.js)"', page)
    assert bundle is not None, "noVNC and the page in one file, named by its content"
    assert "modulepreload" not in page and page.index("portal.") < page.index(bundle.group(1)), \
        "the small stylesheet is asked for first: the bundle's evaluation waits for it"
    assert "Ctrl-Alt-Del" in page and "Fullscreen" in page and "Clipboard" in page
    assert "close-explanations" in page
    static = Client().get(bundle.group(1), HTTP_ACCEPT_ENCODING="gzip")
    assert static.status_code == 200 and static["Content-Encoding"] == "gzip"
    assert "immutable" in static["Cache-Control"] and "max-age=315360000" in static["Cache-Control"]


def page_ticket(response: Any) -> dict[str, Any] | None:
    found = re.search(r'<script id="page-ticket" type="application/json">(.*?)</script>',
                      response.content.decode(), re.S)
    assert found is not None, "the page carries its ticket (or null)"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_the_page_comes_with_a_ticket_its_own_script_opens_the_socket_with(owner,
                                                                           running_desktop):
    """The socket opens while the console's code loads: no ticket request on the way."""
    client = signed_in(owner)
    response = client.get(reverse("desktop-console", args=[running_desktop.pk]))
    assert response["Cache-Control"] == "no-store", "a page with a ticket is never cached"
    given = page_ticket(response)
    assert given is not None and given["path"] == f"/ws/desktops/{running_desktop.pk}/console/"
    ticket = ConsoleTicket.objects.get()
    assert ticket.token_hash == digest(given["ticket"]) and ticket.used_at is None
    assert ticket.session_hash == digest(str(client.session.session_key))
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    inline = re.search(rf'<script nonce="{re.escape(nonce.group(1))}">(.*?)</script>',
                       response.content.decode(), re.S)
    assert inline is not None and "new WebSocket(" in inline.group(1)
    ticket_url = reverse("desktop-console-ticket", args=[running_desktop.pk])
    assert f'fetch("{ticket_url}"' in inline.group(1), "without one, the page asks for it"


def test_a_page_that_cannot_have_a_ticket_still_loads_and_asks_the_endpoint(owner,
                                                                            running_desktop):
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.STOPPED)
    response = signed_in(owner).get(reverse("desktop-console", args=[running_desktop.pk]))
    assert response.status_code == 200 and page_ticket(response) is None
    assert not ConsoleTicket.objects.exists()


def test_the_pages_tickets_count_toward_the_ticket_limit(owner, running_desktop, settings):
    settings.TICKET_RATE_LIMIT = "100/m/ip,1/m/user"
    client = signed_in(owner)
    url = reverse("desktop-console", args=[running_desktop.pk])
    assert page_ticket(client.get(url)) is not None
    assert page_ticket(client.get(url)) is None
    assert ConsoleTicket.objects.count() == 1


def test_diagnosis_says_why(owner, running_desktop):
    client = signed_in(owner)
    url = reverse("desktop-console-diagnose", args=[running_desktop.pk])
    assert client.get(url, {"origin": "http://localhost:8000"}).json()["problems"] == []

    report = client.get(url, {"origin": "http://evil.example"}).json()
    assert "not in VDI_ALLOWED_HOSTS" in report["problems"][0]

    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.STOPPED,
                                                 console_error="ticket expired")
    report = client.get(url).json()
    assert report["problems"] == ["The desktop is not running (it is stopped)."]
    assert report["last_error"] == "ticket expired"

    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.RUNNING,
                                                         vnc_port=None)
    assert "VNC" in client.get(url).json()["problems"][0]


def test_list_offers_connect_only_for_running_desktops(owner, running_desktop):
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert reverse("desktop-console", args=[running_desktop.pk]) in page
    Desktop.objects.filter(pk=running_desktop.pk).update(status=DesktopStatus.STOPPED)
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert reverse("desktop-console", args=[running_desktop.pk]) not in page

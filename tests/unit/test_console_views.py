"""The console page, its ticket endpoint and its diagnosis, for each persona."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from vdi.choices import DesktopStatus
from vdi.models import ConsoleTicket, Desktop
from vdi.services.console import digest


@pytest.fixture
def running(owner, pool, host, image_version) -> Desktop:
    return Desktop.objects.create(
        owner=owner, pool=pool, host=host, image_version=image_version,
        domain_name="vditest-cv", disk_path="/x", serial_log_path="/x.log", vcpus=1,
        memory_mib=256, status=DesktopStatus.RUNNING, vnc_host="127.0.0.1", vnc_port=5900,
    )


def signed_in(user, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_owner_gets_a_single_use_ticket_bound_to_the_session(owner, running):
    client = signed_in(owner)
    response = client.post(reverse("desktop-console-ticket", args=[running.pk]))
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == f"/ws/desktops/{running.pk}/console/"
    assert body["expires_in"] == 30
    assert response["Cache-Control"] == "no-store"
    ticket = ConsoleTicket.objects.get()
    assert ticket.token_hash == digest(body["ticket"]), "only the hash is stored"
    assert body["ticket"] not in str(ConsoleTicket.objects.values_list())
    assert ticket.session_hash == digest(str(client.session.session_key))
    assert ticket.user == owner and ticket.desktop == running and ticket.used_at is None
    assert 25 <= (ticket.expires_at - ticket.created_at).total_seconds() <= 31


def test_ticket_needs_csrf(owner, running):
    response = signed_in(owner, csrf=True).post(
        reverse("desktop-console-ticket", args=[running.pk]))
    assert response.status_code == 403
    assert not ConsoleTicket.objects.exists()


def test_get_is_not_allowed_for_tickets(owner, running):
    response = signed_in(owner).get(reverse("desktop-console-ticket", args=[running.pk]))
    assert response.status_code == 405


@pytest.mark.parametrize("persona", ["outsider", "disabled_user"])
def test_others_get_no_ticket_and_no_page(request, running, persona):
    client = Client()
    client.force_login(request.getfixturevalue(persona))
    ticket = client.post(reverse("desktop-console-ticket", args=[running.pk]))
    page = client.get(reverse("desktop-console", args=[running.pk]))
    assert ticket.status_code in (302, 404) and page.status_code in (302, 404)
    assert not ConsoleTicket.objects.exists()


def test_anonymous_is_sent_to_sign_in(running):
    response = Client().get(reverse("desktop-console", args=[running.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_admin_gets_a_ticket_for_any_desktop(admin_user, running):
    response = signed_in(admin_user).post(reverse("desktop-console-ticket", args=[running.pk]))
    assert response.status_code == 200


def test_stopped_desktop_gets_no_ticket_and_a_reason(owner, running):
    Desktop.objects.filter(pk=running.pk).update(status=DesktopStatus.STOPPED)
    response = signed_in(owner).post(reverse("desktop-console-ticket", args=[running.pk]))
    assert response.status_code == 409
    assert response.json()["error"] == "The desktop is not running (it is stopped)."


def test_console_page_loads_novnc_from_static(owner, running):
    page = signed_in(owner).get(reverse("desktop-console", args=[running.pk])).content.decode()
    assert 'src="/static/vdi/console.js"' in page and 'type="module"' in page
    assert "Ctrl-Alt-Del" in page and "Fullscreen" in page and "Clipboard" in page
    assert "close-explanations" in page
    static = Client().get("/static/novnc/core/rfb.js")
    assert static.status_code == 200, "noVNC is served as static files"


def test_diagnosis_says_why(owner, running):
    client = signed_in(owner)
    url = reverse("desktop-console-diagnose", args=[running.pk])
    assert client.get(url, {"origin": "http://localhost:8000"}).json()["problems"] == []

    report = client.get(url, {"origin": "http://evil.example"}).json()
    assert "not in VDI_ALLOWED_HOSTS" in report["problems"][0]

    Desktop.objects.filter(pk=running.pk).update(status=DesktopStatus.STOPPED,
                                                 console_error="ticket expired")
    report = client.get(url).json()
    assert report["problems"] == ["The desktop is not running (it is stopped)."]
    assert report["last_error"] == "ticket expired"

    Desktop.objects.filter(pk=running.pk).update(status=DesktopStatus.RUNNING, vnc_port=None)
    assert "VNC" in client.get(url).json()["problems"][0]


def test_list_offers_connect_only_for_running_desktops(owner, running):
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert reverse("desktop-console", args=[running.pk]) in page
    Desktop.objects.filter(pk=running.pk).update(status=DesktopStatus.STOPPED)
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert reverse("desktop-console", args=[running.pk]) not in page

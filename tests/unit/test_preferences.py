"""A user's keyboard layout: chosen on their settings page, audited, and sent to the sessions
of their running desktops that have a guest agent (the worker sets it with setxkbmap), on a
change and whenever they open a console (whose "Keyboard:" line follows a change at once);
desktops without a session agent keep "Type it"."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.urls import reverse

from tests.console_helpers import FakeVnc, opened, run, session_cookie, with_vnc
from tests.support import drain, signed_in
from vdi.choices import KeyboardLayout, Readiness
from vdi.models import AuditEvent, Preferences
from vdi.services.preferences import keyboard_for_console, keyboard_layout, set_keyboard_layout
from vdi.task_names import APPLY_KEYBOARD_LAYOUT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agent_desktop(running_desktop):
    version = running_desktop.image_version
    version.readiness = Readiness.AGENT
    version.session_process = "icewm"
    version.save()
    return running_desktop


def test_a_new_user_types_on_us_english(owner):
    assert keyboard_layout(owner) is KeyboardLayout.US
    page = signed_in(owner).get(reverse("preferences")).content.decode()
    assert '<option value="us" selected>English (US)</option>' in page
    assert "French (AZERTY)" in page and "German" in page


def test_choosing_a_layout_sends_it_to_running_desktops_with_a_session_agent(
        owner, agent_desktop, empty_queue):
    response = signed_in(owner).post(reverse("preferences"), {"keyboard_layout": "fr"})
    assert response.status_code == 302
    assert Preferences.objects.get(user=owner).keyboard_layout == "fr"
    assert drain(agent_desktop.host.queue) == [
        {"task": APPLY_KEYBOARD_LAYOUT, "args": [agent_desktop.pk, "fr"]}]
    event = AuditEvent.objects.get(action="preferences.keyboard")
    assert (event.details["before"], event.details["after"]) == ("us", "fr")


def test_a_layout_that_is_not_offered_is_refused(owner, agent_desktop, empty_queue):
    response = signed_in(owner).post(reverse("preferences"), {"keyboard_layout": "us;reboot"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Preferences.objects.filter(user=owner).exists()
    assert drain(agent_desktop.host.queue) == []


def test_a_desktop_without_a_session_agent_keeps_type_it(owner, running_desktop, empty_queue):
    signed_in(owner).post(reverse("preferences"), {"keyboard_layout": "de"})
    assert drain(running_desktop.host.queue) == [], "nothing in it could set a layout"
    page = signed_in(owner).get(reverse("desktop-console", args=[running_desktop.pk]))
    assert "Type it into the desktop" in page.content.decode()


def test_opening_the_console_brings_the_owners_layout_and_hides_type_it(
        owner, outsider, agent_desktop, empty_queue):
    Preferences.objects.create(user=owner, keyboard_layout="de")
    keyboard_for_console(agent_desktop.pk, owner)
    keyboard_for_console(agent_desktop.pk, outsider)  # not theirs: nothing
    assert drain(agent_desktop.host.queue) == [
        {"task": APPLY_KEYBOARD_LAYOUT, "args": [agent_desktop.pk, "de"]}]
    page = signed_in(owner).get(reverse("desktop-console", args=[agent_desktop.pk]))
    text = page.content.decode()
    assert "Type it into the desktop" not in text
    assert 'Keyboard: <span id="console-keyboard">German</span>' in text


def test_the_users_open_console_hears_of_a_new_layout_at_once(owner, agent_desktop, empty_queue):
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        console = await opened(owner, session, agent_desktop)
        await asyncio.to_thread(set_keyboard_layout, owner, KeyboardLayout.FR)
        while isinstance(frame := await console.receive_from(timeout=5), bytes):
            pass  # the desktop's screen
        assert json.loads(frame) == {"notice": "keyboard", "label": "French (AZERTY)"}
        await console.disconnect()

    run(with_vnc, agent_desktop, body)

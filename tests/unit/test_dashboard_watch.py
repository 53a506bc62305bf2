"""The dashboard's Watch link on a live session: offered by the one rule of who may see a
screen (``access.screen_access``) to those who may watch it, and to nobody else; it opens the
console page that the admin's session list opens, view only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from tests.dashboard_fixtures import desktop, session, staff
from tests.support import signed_in
from vdi.models import Desktop, Pool

PART = "/dashboard/parts/sessions/"


@pytest.fixture
def in_use(pool: Pool, host: Any, owner: Any) -> Desktop:
    """The owner's VNC desktop, its console open."""
    shown = desktop(pool, host, owner=owner)
    session(shown, owner)
    return shown


def card(client: Any, shown: Desktop) -> str:
    page = client.get(PART).content.decode()
    found = re.search(rf'<article class="card screen-card" id="live-{shown.pk}".*?</article>',
                      page, re.S)
    assert found, "the live session is shown"
    return found.group(0)


def watch_link(shown: Desktop) -> str:
    return f'<a class="button watch" href="{reverse("desktop-console", args=[shown.pk])}"'


def test_the_helpdesk_may_watch_a_vnc_desktop_from_the_dashboard(helpdesk, in_use):
    client = signed_in(helpdesk)
    assert watch_link(in_use) in card(client, in_use)
    assert "its user is asked first" not in card(client, in_use)
    console = client.get(reverse("desktop-console", args=[in_use.pk])).content.decode()
    assert 'id="console-view-only"' in console, "the link leads to watching, view only"


def test_the_link_goes_where_the_admins_session_list_goes(admin_user, in_use):
    sessions = signed_in(admin_user).get("/admin/vdi/consolesession/").content.decode()
    assert f'href="{reverse("desktop-console", args=[in_use.pk])}"' in sessions


def test_watching_a_desktop_whose_user_is_asked_first(helpdesk, pool, in_use):
    pool.watch_consent = True
    pool.save()
    shown = card(signed_in(helpdesk), in_use)
    assert watch_link(in_use) in shown and "its user is asked first" in shown


def test_no_watch_link_on_a_spice_desktop(helpdesk, in_use):
    Desktop.objects.filter(pk=in_use.pk).update(display_protocol="spice")
    shown = card(signed_in(helpdesk), in_use)
    assert 'class="button watch"' not in shown
    assert "A SPICE screen is shown to its user only" in shown


def test_no_watch_link_for_those_who_may_not_watch(in_use):
    """Someone whose dashboard shows every desktop, without the right to watch one."""
    viewers = Group.objects.create(name="viewers")
    viewers.permissions.set(Permission.objects.filter(
        content_type__app_label="vdi", codename__in=("view_desktop", "view_pool")))
    viewer = staff("viewer", "viewers")
    shown = card(signed_in(viewer), in_use)
    assert 'class="button watch"' not in shown and "Not yours to watch" in shown

"""The desktops page: each persona sees and changes only what it should; no libvirt calls."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.support import signed_in
from vdi.choices import DesktopStatus
from vdi.models import Desktop, Operation, UserQuota
from vdi.services.desktops import create_desktop, new_desktop

pytestmark = pytest.mark.usefixtures("empty_queue")


def test_anonymous_is_sent_to_sign_in(db):
    response = Client().get(reverse("desktop-list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = Client().post(reverse("desktop-create"), {"pool": 1})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_sign_in_page_works(db, owner):
    client = Client()
    assert client.get(reverse("account_login")).status_code == 200
    response = client.post(reverse("account_login"), {"login": "owner",
                                                      "password": "owner-password"})
    assert response.status_code == 302
    assert client.get(reverse("desktop-list")).status_code == 200


def test_list_shows_only_my_desktops(owner, member, pool, host):
    mine = create_desktop(owner, pool)
    theirs = create_desktop(member, pool)
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert f'id="desktop-{mine.pk}"' in page
    assert f'id="desktop-{theirs.pk}"' not in page
    assert "Unit pool" in page


def test_a_pool_card_says_what_a_claim_waits_for(owner, pool, host):
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert "A claim starts a new desktop: it boots first." in page
    warm = new_desktop(pool, None, None)
    Desktop.objects.filter(pk=warm.pk).update(
        status=DesktopStatus.RUNNING, pristine=True, guest_ready_at=timezone.now())
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert "A desktop is booted and waiting: yours at once." in page


def test_list_uses_a_constant_number_of_queries(owner, pool, host):
    UserQuota.objects.create(user=owner, max_desktops=20, max_vcpus=20, max_memory_mib=99999)
    pool.max_per_user = 10
    pool.save()
    client = signed_in(owner)
    create_desktop(owner, pool)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("desktop-list"))
    for _ in range(5):
        create_desktop(owner, pool)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("desktop-list"))
    assert len(many) == len(few)


def test_create_from_a_pool(owner, pool, host):
    response = signed_in(owner).post(reverse("desktop-create"), {"pool": pool.pk}, follow=True)
    assert "is being prepared" in response.content.decode()
    desktop = Desktop.objects.get()
    assert desktop.owner == owner and desktop.status == DesktopStatus.PROVISIONING


@pytest.mark.parametrize("bad", ["", "abc", "999999"])
def test_create_with_a_bad_pool_is_a_clear_error(owner, pool, host, bad):
    response = signed_in(owner).post(reverse("desktop-create"), {"pool": bad}, follow=True)
    assert "Choose a pool" in response.content.decode()
    assert not Desktop.objects.exists()


def test_owner_stops_a_running_desktop(owner, pool, host):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    url = reverse("desktop-action", args=[desktop.pk, "stop"])
    response = signed_in(owner).post(url, follow=True)
    assert "Stop of" in response.content.decode()
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.STOPPING


def test_wrong_state_shows_why(owner, pool, host):
    desktop = create_desktop(owner, pool)
    url = reverse("desktop-action", args=[desktop.pk, "start"])
    response = signed_in(owner).post(url, follow=True)
    assert "it is provisioning" in response.content.decode()


@pytest.mark.parametrize("persona", ["outsider", "disabled_user"])
def test_others_cannot_act_on_my_desktop(request, owner, pool, host, persona):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    client = Client()
    client.force_login(request.getfixturevalue(persona))
    response = client.post(reverse("desktop-action", args=[desktop.pk, "delete"]))
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert "/accounts/login/" in response["Location"], "a disabled user is signed out"
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RUNNING
    assert Operation.objects.filter(desktop=desktop).count() == 1


def test_admin_acts_on_any_desktop(owner, admin_user, pool, host):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    signed_in(admin_user).post(reverse("desktop-action", args=[desktop.pk, "restart"]))
    desktop.refresh_from_db()
    assert desktop.status == DesktopStatus.RESTARTING


def test_unknown_action_and_get_are_refused(owner, pool, host):
    desktop = create_desktop(owner, pool)
    client = signed_in(owner)
    assert client.post(reverse("desktop-action", args=[desktop.pk, "explode"])).status_code == 404
    assert client.get(reverse("desktop-action", args=[desktop.pk, "stop"])).status_code == 405


def test_names_are_escaped(owner, pool, host):
    pool.name = "<img src=x onerror=alert(1)>"
    pool.save()
    create_desktop(owner, pool)
    page = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_page_lists_only_entitled_pools(owner, outsider, pool, image_version):
    from vdi.models import Pool

    Pool.objects.create(name="Secret pool", image=image_version.image)
    mine = signed_in(owner).get(reverse("desktop-list")).content.decode()
    assert "Unit pool" in mine and "Secret pool" not in mine
    theirs = signed_in(outsider).get(reverse("desktop-list")).content.decode()
    assert "Unit pool" not in theirs and "No pool is open to you" in theirs


def test_claiming_a_warm_desktop_opens_its_console(owner, pool):
    from vdi.services.desktops import new_desktop

    warm = new_desktop(pool, None, None)
    Desktop.objects.filter(pk=warm.pk).update(status=DesktopStatus.RUNNING, pristine=True)
    response = signed_in(owner).post(reverse("pool-claim", args=[pool.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("desktop-console", args=[warm.pk])


def test_outsider_cannot_claim(outsider, pool):
    response = signed_in(outsider).post(reverse("pool-claim", args=[pool.pk]))
    assert response.status_code == 404
    assert not Desktop.objects.exists()


def test_release_from_the_page(owner, pool):
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    response = signed_in(owner).post(reverse("desktop-action", args=[desktop.pk, "release"]),
                                     follow=True)
    assert "Release of" in response.content.decode()
    desktop.refresh_from_db()
    assert desktop.owner is None and desktop.status == DesktopStatus.RESETTING


def test_live_rows_show_state_confirmations_and_countdown(owner, pool):
    from django.utils import timezone

    pool.idle_minutes = 15
    pool.save()
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING,
                                                 assigned_at=timezone.now())
    rows = signed_in(owner).get(reverse("desktop-rows")).content.decode()
    assert 'hx-trigger="vdi:changed from:body"' in rows
    assert "Given back" in rows
    assert ('in <span class="minutes">14</span> min' in rows
            or 'in <span class="minutes">15</span> min' in rows)
    assert "no console connected" in rows
    assert 'data-confirm="Reset to the golden image? Everything on the system disk is lost' in rows
    assert reverse("desktop-console", args=[desktop.pk]) in rows


FACTS = {"os": "Debian GNU/Linux 12 <bookworm>", "hostname": "unit-pool-7",
         "addresses": ["10.100.7.129", "fe80::5054:ff:fe00:7"], "users": ["user", "<b>eve</b>"],
         "shared": [{"name": "notes.txt", "size": 5}]}


def row_of(page: str, desktop: Desktop) -> str:
    start = page.index(f'id="desktop-{desktop.pk}"')
    return page[start:page.index("</tr>", start)]


def test_the_row_shows_what_the_guest_agent_says(owner, pool):
    """OS, host name, addresses and who is signed in, escaped; nothing before it says."""
    from django.utils import timezone

    desktop = create_desktop(owner, pool)
    client = signed_in(owner)
    before = row_of(client.get(reverse("desktop-rows")).content.decode(), desktop)
    assert "Signed in" not in before and 'class="facts' not in before
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING,
                                                 guest_ready_at=timezone.now(), guest_facts=FACTS)
    for url in (reverse("desktop-rows"), reverse("desktop-list")):
        page = client.get(url).content.decode()
        row = row_of(page, desktop)
        assert '<small class="facts facts-os">Debian GNU/Linux 12 &lt;bookworm&gt;</small>' in row
        assert "unit-pool-7 · 10.100.7.129 · fe80::5054:ff:fe00:7" in row
        assert ('<small class="facts facts-users">Signed in: user, &lt;b&gt;eve&lt;/b&gt;'
                "</small>") in row
        assert "<b>eve</b>" not in page and "<bookworm>" not in page


@pytest.mark.parametrize("status", [DesktopStatus.STOPPED, DesktopStatus.STOPPING,
                                    DesktopStatus.ERROR])
def test_a_desktop_that_is_not_running_shows_no_session_facts(owner, pool, status):
    """Facts the agent said while it ran (left in the row) are not shown once it stopped."""
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=status, guest_facts=FACTS)
    for url in (reverse("desktop-rows"), reverse("desktop-list")):
        row = row_of(signed_in(owner).get(url).content.decode(), desktop)
        assert "Signed in" not in row and 'class="facts' not in row, (status, url)
        assert "unit-pool-7" not in row and "10.100.7.129" not in row


def test_console_page_tells_the_policies(owner, pool):
    from django.utils import timezone

    pool.idle_minutes, pool.max_session_minutes = 15, 120
    pool.save()
    desktop = create_desktop(owner, pool)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING,
                                                 assigned_at=timezone.now())
    page = signed_in(owner).get(reverse("desktop-console", args=[desktop.pk])).content.decode()
    assert "This session ends at" in page
    assert "If you disconnect, the desktop is given back to the pool after 15 min." in page

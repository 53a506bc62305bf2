"""The operators' dashboard: who sees it and which part of it, the numbers it shows, the
charts' series, and a constant number of queries whatever the number of desktops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.dashboard_fixtures import desktop, failed, session
from tests.support import signed_in
from vdi import thumbnails
from vdi.choices import DesktopStatus
from vdi.models import (
    AuditEvent,
    ClaimTiming,
    ConsoleSession,
    Desktop,
    Host,
    Operation,
    ReconcileRun,
    Stray,
)
from vdi.services import dashboard

PERSONAS = ("anonymous", "owner", "outsider", "helpdesk", "operator", "administrator",
            "admin_user")
SEES_IT = ("helpdesk", "operator", "administrator", "admin_user")
PARTS = ("summary", "hosts", "pools", "rollouts", "sessions", "failures", "reconciler")


@pytest.fixture
def thumbs(settings, tmp_path):
    settings.THUMBNAIL_DIR = tmp_path / "thumbnails"
    return settings.THUMBNAIL_DIR


def client_of(persona: str, request: pytest.FixtureRequest) -> Client:
    if persona == "anonymous":
        return Client()
    return signed_in(request.getfixturevalue(persona))


def expected(persona: str, allowed: bool, refused: int = 403) -> int:
    if persona == "anonymous":
        return 302
    return 200 if allowed else refused


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_page_its_parts_and_charts_by_role(persona, request, pool, host, running_desktop):
    client = client_of(persona, request)
    sees = persona in SEES_IT
    page = client.get("/dashboard/")
    assert page.status_code == expected(persona, sees)
    if persona == "anonymous":
        assert page["Location"].startswith("/accounts/login/")
    assert client.get("/dashboard/charts.json").status_code == expected(persona, sees)
    for part in PARTS:
        # hosts and the reconciler are the helpdesk's and administrators', not pool operators'
        has_part = sees and not (persona == "operator" and part in ("hosts", "reconciler"))
        got = client.get(f"/dashboard/parts/{part}/").status_code
        want = expected(persona, has_part, refused=403 if not sees else 404)
        assert got == want, (part, got)


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_top_bar_links_the_dashboard_for_those_who_see_it(persona, request, pool):
    if persona == "anonymous":
        return
    page = client_of(persona, request).get("/").content.decode()
    assert ('href="/dashboard/"' in page) == (persona in SEES_IT)


def test_the_admin_index_links_the_dashboard(admin_user):
    page = signed_in(admin_user).get("/admin/").content.decode()
    assert 'href="/dashboard/"' in page


def test_a_pool_operator_sees_only_their_pools(operator, pool, other_pool, host, owner,
                                               outsider):
    mine = desktop(pool, host, owner=owner)
    theirs = desktop(other_pool, host, owner=outsider)
    session(mine, owner, client_address="192.0.2.10")
    session(theirs, outsider, client_address="192.0.2.99")
    failed(mine, "start", error="Mine failed.")
    failed(theirs, "start", error="Theirs failed.")
    page = signed_in(operator).get("/dashboard/").content.decode()
    assert "Unit pool" in page and "Other pool" not in page
    assert "192.0.2.10" in page and "192.0.2.99" not in page
    assert "Mine failed." in page and "Theirs failed." not in page
    assert 'id="dash-hosts"' not in page and 'id="dash-reconciler"' not in page
    charts = signed_in(operator).get("/dashboard/charts.json").json()
    assert sum(charts["sessions"]) == 1 and sum(charts["failures"]) == 1


def test_the_helpdesk_sees_everything_but_may_retry_nothing(helpdesk, administrator, pool,
                                                            other_pool, host, owner):
    broken = desktop(other_pool, host, status=DesktopStatus.ERROR, owner=owner)
    operation = failed(broken, "start", error="Start failed.")
    seen = signed_in(helpdesk).get("/dashboard/").content.decode()
    assert "Unit pool" in seen and "Other pool" in seen and "Start failed." in seen
    assert 'id="dash-hosts"' in seen and 'id="dash-reconciler"' in seen
    assert f"/dashboard/operations/{operation.pk}/retry/" not in seen
    assert "You may not" not in seen, "no reason shown for what is not theirs to do"
    boss = signed_in(administrator).get("/dashboard/").content.decode()
    assert f"/dashboard/operations/{operation.pk}/retry/" in boss


def row(page: str, element_id: str) -> str:
    found = re.search(rf'<tr id="{element_id}".*?</tr>', page, re.S)
    assert found, f"no row {element_id}"
    return found.group(0)


def cell(html: str, name: str) -> str:
    found = re.search(rf'data-count="{name}"[^>]*>(.*?)</td>', html, re.S)
    assert found, name
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_numbers_shown(admin_user, pool, other_pool, host, owner, outsider):
    Host.objects.filter(pk=host.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=12))
    spare = Host.objects.create(name="spare", storage_dir="/nonexistent", cpu_capacity=4,
                                memory_capacity_mib=2048, bridges="br0")
    desktop(pool, host, owner=None, pristine=True)  # ready
    desktop(pool, host, owner=None, pristine=True)  # ready
    desktop(pool, host, owner=None, pristine=False)  # running, nobody's, used: not ready
    held = desktop(pool, host, owner=owner)  # in use
    desktop(pool, host, status=DesktopStatus.STOPPED, owner=outsider)  # in use, stopped
    desktop(other_pool, host, status=DesktopStatus.ERROR)
    other_pool.draining = True
    other_pool.save()
    session(held, owner, client_address="198.51.100.4", bytes_to_browser=2048,
            bytes_to_guest=10)
    page = signed_in(admin_user).get("/dashboard/").content.decode()

    # pools: 5 unit desktops of 256 MiB, 1 vCPU; one of the other pool's, 512 MiB, 2 vCPUs
    unit = row(page, f"pool-{pool.pk}")
    assert (cell(unit, "ready"), cell(unit, "in_use"), cell(unit, "total"),
            cell(unit, "max"), cell(unit, "failed")) == ("2", "2", "5", "10", "0")
    other = row(page, f"pool-{other_pool.pk}")
    assert (cell(other, "total"), cell(other, "max"), cell(other, "failed")) == ("1", "4", "1")
    assert "draining" in other and "draining" not in unit

    # hosts: placed against capacity (4096 MiB, 8 vCPUs), heartbeat, networks
    loaded = row(page, f"host-{host.pk}")
    assert "1792 / 4096 MiB" in loaded  # 5 x 256 + 512
    assert "7 / 8 vCPUs" in loaded  # 5 x 1 + 2
    assert "1024 MiB running" in loaded and "4 running" in loaded  # 4 running unit desktops
    assert 'data-up="yes"' in loaded and ">12 s</span> ago" in loaded
    idle = row(page, f"host-{spare.pk}")
    assert "0 / 2048 MiB" in idle and "0 / 4 vCPUs" in idle and "no heartbeat yet" in idle
    assert "br0" in idle

    # the live session: who, which desktop, from where, bytes
    card = re.search(rf'<article class="card screen-card" id="live-{held.pk}".*?</article>',
                     page, re.S).group(0)
    assert "owner" in card and str(held) in card and "198.51.100.4" in card
    assert "2.0\xa0KB out, 10\xa0bytes in" in card

    # the summary
    assert re.search(r'data-stat="desktops">6<', page)
    assert re.search(r'data-stat="running">4<', page)
    assert re.search(r'data-stat="sessions">1<', page)
    assert re.search(r'data-stat="errors">1<', page)


def test_a_stale_or_closed_session_is_not_live(admin_user, pool, host, owner, settings):
    stale = desktop(pool, host, owner=owner)
    closed = desktop(pool, host, owner=owner)
    old = session(stale, owner)
    ConsoleSession.objects.filter(pk=old.pk).update(
        last_seen_at=timezone.now() - timedelta(seconds=settings.CONSOLE_STALE + 5))
    session(closed, owner, closed_at=timezone.now())
    page = signed_in(admin_user).get("/dashboard/parts/sessions/").content.decode()
    assert "Nobody has a console open." in page


def test_the_reconcilers_findings(admin_user, host):
    older = ReconcileRun.objects.create(host=host, finished_at=timezone.now(), findings=[
        {"kind": "stray disk", "target": "vditest-older", "action": "removed"}])
    ReconcileRun.objects.filter(pk=older.pk).update(
        started_at=timezone.now() - timedelta(minutes=5))
    ReconcileRun.objects.create(host=host, finished_at=timezone.now(), findings=[
        {"kind": "stray domain", "target": "vditest-lost", "action": "reported"}])
    Stray.objects.create(host=host, kind=Stray.Kind.DISK, name="/var/lib/x/vditest-a.qcow2")
    Stray.objects.create(host=host, kind=Stray.Kind.DOMAIN, name="vditest-gone",
                         resolved_at=timezone.now())
    page = signed_in(admin_user).get("/dashboard/parts/reconciler/").content.decode()
    assert "stray domain: vditest-lost → reported" in page
    assert "vditest-older" not in page, "each host's latest pass only"
    assert "vditest-a.qcow2" in page and "vditest-gone" not in page


def test_chart_series_count_per_hour(admin_user, pool, host, owner):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    hours_ago = lambda n: now - timedelta(hours=n)  # noqa: E731
    on = desktop(pool, host, owner=owner)
    for n in (0, 0, 2, 30):  # 30 h ago: outside the day
        opened = session(on, owner)
        ConsoleSession.objects.filter(pk=opened.pk).update(opened_at=hours_ago(n))
    for n in (1, 1, 1):
        event = AuditEvent.objects.create(action="desktop.claim", details={"pool": pool.name})
        AuditEvent.objects.filter(pk=event.pk).update(created_at=hours_ago(n))
    AuditEvent.objects.create(action="desktop.start")  # not a claim
    failed(on, "start", finished_at=hours_ago(3))
    failed(on, "stop", finished_at=hours_ago(3))
    Operation.objects.create(kind="start", desktop=on, target="x", status="succeeded",
                             finished_at=hours_ago(3))
    for n, seconds in ((0, 10.0), (0, 20.0), (5, 3.0)):
        ClaimTiming.objects.create(pool=pool, desktop_id=on.pk, seconds=seconds,
                                   ready_at=hours_ago(n))
    scope = dashboard.scope_of(admin_user)
    assert scope is not None
    charts = dashboard.charts(scope, now)
    assert len(charts["hours"]) == 24
    assert charts["hours"][-1] == now.replace(minute=0).isoformat()

    def at(series, n):  # the bucket n hours before the current one
        return charts[series][-1 - n]

    assert (at("sessions", 0), at("sessions", 2), sum(charts["sessions"])) == (2, 1, 3)
    assert (at("claims", 1), sum(charts["claims"])) == (3, 3)
    assert (at("failures", 3), sum(charts["failures"])) == (2, 2)
    assert at("claim_ready_seconds", 0) == 15.0 and at("claim_ready_seconds", 5) == 3.0
    assert at("claim_ready_seconds", 1) is None, "no claim that hour: no average"
    assert signed_in(admin_user).get("/dashboard/charts.json")["Cache-Control"] == (
        "private, no-store")


def dashboard_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/dashboard/").status_code == 200
    return len(captured)


def fill(pool, host, owner, count: int) -> None:
    for n in range(count):
        made = desktop(pool, host, owner=owner if n % 2 else None,
                       status=DesktopStatus.RUNNING if n % 3 else DesktopStatus.ERROR)
        if n % 2:
            session(made, owner, client_address="192.0.2.1")
        if not n % 3:
            failed(made, "start")


@pytest.mark.parametrize("persona", ["admin_user", "operator", "helpdesk"])
def test_queries_stay_constant(persona, request, pool, host, owner, thumbs):
    pool.max_size = 1000
    pool.save()
    client = signed_in(request.getfixturevalue(persona))
    fill(pool, host, owner, 10)
    dashboard_queries(client)  # warm: content types, permissions
    with_ten = dashboard_queries(client)
    fill(pool, host, owner, 190)
    with_two_hundred = dashboard_queries(client)
    assert with_ten == with_two_hundred, (with_ten, with_two_hundred)


# --- thumbnails ----------------------------------------------------------------------------------

@pytest.mark.parametrize("persona", (*PERSONAS, "other_operator"))
def test_the_thumbnail_by_role(persona, request, pool, host, owner, thumbs):
    shown = desktop(pool, host, owner=owner)
    session(shown, owner)
    thumbnails.store(shown.domain_name, b"\xff\xd8jpeg")
    sees = persona in SEES_IT
    got = client_of(persona, request).get(f"/dashboard/desktops/{shown.pk}/thumbnail.jpg")
    assert got.status_code == expected(persona, sees, refused=404)
    if sees:
        assert got.getvalue() == b"\xff\xd8jpeg"
        assert got["Content-Type"] == "image/jpeg"
        assert got["Cache-Control"] == "private, max-age=30"


def test_no_thumbnail_where_the_user_is_asked_before_watching(helpdesk, administrator, pool,
                                                              host, owner, thumbs):
    pool.watch_consent = True
    pool.save()
    shown = desktop(pool, host, owner=owner)
    session(shown, owner)
    thumbnails.store(shown.domain_name, b"\xff\xd8jpeg")
    url = f"/dashboard/desktops/{shown.pk}/thumbnail.jpg"
    assert signed_in(helpdesk).get(url).status_code == 404  # watching needs the user's yes
    page = signed_in(helpdesk).get("/dashboard/parts/sessions/").content.decode()
    assert url not in page and "Its user is asked before anyone watches" in page
    assert signed_in(administrator).get(url).status_code == 200  # may use its console anyway


def test_no_thumbnail_of_a_spice_screen_for_those_who_cannot_watch_it(
        helpdesk, administrator, pool, host, owner, thumbs):
    """The rule that refuses the helpdesk a SPICE console refuses it the picture too."""
    shown = desktop(pool, host, owner=owner)
    Desktop.objects.filter(pk=shown.pk).update(display_protocol="spice")
    session(shown, owner)
    thumbnails.store(shown.domain_name, b"\xff\xd8jpeg")
    url = f"/dashboard/desktops/{shown.pk}/thumbnail.jpg"
    assert signed_in(helpdesk).get(url).status_code == 404
    page = signed_in(helpdesk).get("/dashboard/parts/sessions/").content.decode()
    assert url not in page and "A SPICE screen is shown to its user only" in page
    assert signed_in(administrator).get(url).status_code == 200  # may use its console


def test_the_page_names_each_thumbnail_by_its_version(admin_user, pool, host, owner, thumbs):
    shown = desktop(pool, host, owner=owner)
    session(shown, owner)
    page = signed_in(admin_user).get("/dashboard/parts/sessions/").content.decode()
    assert "No picture yet" in page
    thumbnails.store(shown.domain_name, b"\xff\xd8jpeg")
    version = int(thumbnails.taken_at(shown.domain_name).timestamp())
    page = signed_in(admin_user).get("/dashboard/parts/sessions/").content.decode()
    assert f"/dashboard/desktops/{shown.pk}/thumbnail.jpg?v={version}" in page


@pytest.mark.parametrize("name", ["VDI_THUMBNAIL_DIR", "VDI_THUMBNAIL_INTERVAL"])
def test_the_dashboards_settings_are_documented(name):
    root = Path(__file__).resolve().parents[2]
    assert f'"{name}"' in (root / "portal" / "settings.py").read_text()
    assert f"`{name}`" in (root / "README.md").read_text()
    assert f"{name}=" in (root / "docker" / ".env.example").read_text()


def beat_entry(interval: str) -> subprocess.CompletedProcess[str]:
    """Start Django on the real settings with ``VDI_THUMBNAIL_INTERVAL`` and print beat's
    thumbnail entry."""
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings",
               "VDI_SECRET_KEY": "k" * 40, "VDI_THUMBNAIL_INTERVAL": interval}
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.CELERY_BEAT_SCHEDULE.get('take-thumbnails'))")
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, check=False, timeout=120)


def test_thumbnails_are_scheduled_or_turned_off():
    assert beat_entry("12").stdout.strip() == (
        "{'task': 'vdi.take_thumbnails', 'schedule': 12}")
    assert beat_entry("0").stdout.strip() == "None", "0 turns them off"
    refused = beat_entry("3")
    assert refused.returncode != 0
    assert "VDI_THUMBNAIL_INTERVAL: must be 0 (off) or at least 5, got 3" in refused.stderr


def test_a_claim_keeps_its_time_to_ready_for_the_chart(owner, pool, host,
                                                       django_capture_on_commit_callbacks):
    from vdi.services import claims

    ready = desktop(pool, host, owner=None, pristine=True, guest_ready_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        claimed = claims.claim_desktop(owner, pool)
    assert claimed.pk == ready.pk
    timing = ClaimTiming.objects.get()
    assert (timing.pool, timing.desktop_id) == (pool, ready.pk)
    assert 0 <= timing.seconds < 5, "a warm desktop whose guest was ready: at once"
    claims.timed(ready, None, timezone.now())  # no claim was waiting: nothing kept
    assert ClaimTiming.objects.count() == 1

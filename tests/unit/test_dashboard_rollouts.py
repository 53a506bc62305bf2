"""The dashboard's image rollouts: those under way in the pools each person's dashboard shows,
their stage, how many desktops run the new version, their canaries' health and what each
waits for; a link to the rollout's admin page for those whom it opens to; and no query per
rollout."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.dashboard_fixtures import desktop, staff
from tests.support import make_version, signed_in
from vdi.choices import DesktopStatus, RolloutStatus
from vdi.models import Desktop, ImageVersion, Pool, Rollout
from vdi.roles import POOL_OPERATORS

PART = "/dashboard/parts/rollouts/"


def rollout_in(pool: Pool, to: ImageVersion, status: str = RolloutStatus.CANARY,
               canaries: Sequence[Desktop] = (), **fields: Any) -> Rollout:
    return Rollout.objects.create(
        pool=pool, from_version=pool.image.versions.order_by("number").first(), to_version=to,
        status=status, canaries=[d.pk for d in canaries],
        canaries_started_at=timezone.now() if canaries else None, **fields)


def on(version: ImageVersion, pool: Pool, host: Any, **fields: Any) -> Desktop:
    """A desktop of ``pool`` made from ``version``."""
    made = desktop(pool, host, **fields)
    Desktop.objects.filter(pk=made.pk).update(image_version=version)
    return made


@pytest.fixture
def new_version(image_version: ImageVersion) -> ImageVersion:
    return make_version(image_version.image.name, "/nonexistent/unit/v2.qcow2")


@pytest.fixture
def in_canary(pool: Pool, host: Any, owner: Any, image_version: ImageVersion,
              new_version: ImageVersion) -> Rollout:
    """The unit pool tries v2: one canary ready on it, one still resetting; a desktop in use
    stays on v1."""
    pool.rollout_health_seconds = 300
    pool.save()
    ready = on(new_version, pool, host, guest_ready_at=timezone.now())
    resetting = on(image_version, pool, host, status=DesktopStatus.RESETTING)
    on(image_version, pool, host, owner=owner)
    return rollout_in(pool, new_version, canaries=[ready, resetting])


@pytest.fixture
def paused(other_pool: Pool, host: Any, image_version: ImageVersion,
           new_version: ImageVersion) -> Rollout:
    """The other pool's rollout of v2, paused by an administrator while trying its canary,
    which had failed."""
    broken = on(image_version, other_pool, host, status=DesktopStatus.ERROR)
    on(image_version, other_pool, host)
    return rollout_in(other_pool, new_version, status=RolloutStatus.PAUSED,
                      paused_from=RolloutStatus.CANARY, canaries=[broken])


def row(page: str, rollout: Rollout) -> str:
    found = re.search(rf'<tr id="rollout-{rollout.pk}".*?</tr>', page, re.S)
    assert found, f"no row of rollout {rollout.pk}"
    return found.group(0)


def cell(html: str, name: str) -> str:
    found = re.search(rf'<(td|span)\b[^>]*data-cell="{name}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, name
    return " ".join(re.sub(r"<[^>]+>", "", found.group(2)).split())


def rollouts_seen(client: Client) -> set[int]:
    page = client.get(PART)
    assert page.status_code == 200
    return {int(pk) for pk in re.findall(r'<tr id="rollout-(\d+)"', page.content.decode())}


def test_where_each_rollout_stands(admin_user, in_canary, paused, new_version):
    page = signed_in(admin_user).get(PART).content.decode()

    trying = row(page, in_canary)
    assert 'data-stage="canary"' in trying
    assert cell(trying, "stage") == "trying the canaries"
    assert cell(trying, "on_new") == "1 of 3 desktops", "the desktop in use stays on v1"
    assert cell(trying, "canaries").startswith("1 ready, 0 failed, 1 waiting")
    assert cell(trying, "waits_for").startswith("1 of 2 canaries to be ready on unit v2")
    assert "judged by" in trying, "the resetting canary's deadline"

    stopped = row(page, paused)
    assert cell(stopped, "stage") == "paused while trying the canaries"
    assert cell(stopped, "canaries").startswith("0 ready, 1 failed, 0 waiting")
    assert cell(stopped, "waits_for") == "an administrator to resume it"


def test_a_rollout_rolling_back_says_what_it_waits_for(admin_user, pool, host, new_version):
    canary = on(new_version, pool, host, status=DesktopStatus.ERROR)
    going_back = rollout_in(pool, new_version, status=RolloutStatus.ROLLING_BACK,
                            canaries=[canary], failed=[canary.pk])
    trying = row(signed_in(admin_user).get(PART).content.decode(), going_back)
    assert cell(trying, "stage") == "rolling back the canaries"
    assert cell(trying, "canaries").startswith("0 ready, 1 failed, 0 waiting")
    assert cell(trying, "waits_for") == "its canaries to settle, then they go back to unit v1"


def test_finished_rollouts_are_not_shown(admin_user, pool, other_pool, new_version):
    rollout_in(pool, new_version, status=RolloutStatus.DONE, finished_at=timezone.now())
    rollout_in(other_pool, new_version, status=RolloutStatus.ROLLED_BACK,
               finished_at=timezone.now())
    page = signed_in(admin_user).get(PART).content.decode()
    assert "No rollout under way." in page


def test_a_rollout_before_its_canaries_are_chosen(admin_user, pool, new_version):
    waiting = rollout_in(pool, new_version)
    trying = row(signed_in(admin_user).get(PART).content.decode(), waiting)
    assert cell(trying, "canaries") == "none yet"
    assert cell(trying, "waits_for") == (
        "the next pass to choose its canaries among the idle desktops")


def test_who_sees_which_rollouts(admin_user, administrator, helpdesk, operator, other_pool,
                                 owner, outsider, in_canary, paused):
    other_operator = staff("other-pool-operator", POOL_OPERATORS)
    other_pool.operators.add(other_operator)
    both = {in_canary.pk, paused.pk}
    assert rollouts_seen(signed_in(admin_user)) == both
    assert rollouts_seen(signed_in(administrator)) == both
    assert rollouts_seen(signed_in(helpdesk)) == both, "the helpdesk sees every pool"
    assert rollouts_seen(signed_in(operator)) == {in_canary.pk}, "their pool's only"
    assert rollouts_seen(signed_in(other_operator)) == {paused.pk}
    for nobody in (owner, outsider):
        assert signed_in(nobody).get(PART).status_code == 403
    page = signed_in(operator).get("/dashboard/").content.decode()
    assert f'id="rollout-{in_canary.pk}"' in page and f'id="rollout-{paused.pk}"' not in page


def test_the_link_to_the_rollouts_admin_page_for_those_it_opens_to(
        admin_user, helpdesk, operator, in_canary):
    link = f'href="/admin/vdi/rollout/{in_canary.pk}/change/"'
    assert link in signed_in(admin_user).get(PART).content.decode()
    assert signed_in(admin_user).get(f"/admin/vdi/rollout/{in_canary.pk}/change/").status_code \
        == 200
    for refused in (helpdesk, operator):  # the admin's rollout pages are administrators'
        assert link not in signed_in(refused).get(PART).content.decode()
        assert signed_in(refused).get(
            f"/admin/vdi/rollout/{in_canary.pk}/change/").status_code in (302, 403)


def test_the_part_is_refreshed_with_the_others(admin_user, in_canary):
    page = signed_in(admin_user).get("/dashboard/").content.decode()
    section = re.search(r'<section id="dash-rollouts"[^>]*>', page)
    assert section, "the part is on the page"
    assert 'hx-get="/dashboard/parts/rollouts/"' in section.group(0)
    assert 'hx-trigger="vdi:changed from:body"' in section.group(0)


def rollouts_in_new_pools(count: int, host: Any, to: ImageVersion, operator: Any) -> None:
    """``count`` pools that ``operator`` operates, each trying ``to`` on two canaries."""
    for _ in range(count):
        n = Pool.objects.count()
        pool = Pool.objects.create(name=f"Pool {n}", image=to.image, max_size=10)
        pool.operators.add(operator)
        ready = on(to, pool, host, guest_ready_at=timezone.now())
        booting = on(to, pool, host, status=DesktopStatus.STARTING)
        rollout_in(pool, to, canaries=[ready, booting])


def dashboard_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/dashboard/").status_code == 200
    return len(captured)


@pytest.mark.parametrize("persona", ["admin_user", "operator", "helpdesk"])
def test_no_query_per_rollout(persona, request, host, new_version):
    person = request.getfixturevalue(persona)
    client = signed_in(person)
    rollouts_in_new_pools(2, host, new_version, person)
    dashboard_queries(client)  # warm: content types, permissions
    with_two = dashboard_queries(client)
    rollouts_in_new_pools(10, host, new_version, person)
    assert len(rollouts_seen(client)) == 12
    assert dashboard_queries(client) == with_two


def test_a_canary_out_of_time_counts_as_failed(admin_user, pool, host, new_version):
    late = on(new_version, pool, host)  # runs v2, never said ready
    Desktop.objects.filter(pk=late.pk).update(
        status_changed_at=timezone.now() - timedelta(seconds=pool.rollout_health_seconds + 5))
    trying = rollout_in(pool, new_version, canaries=[late])
    Rollout.objects.filter(pk=trying.pk).update(
        canaries_started_at=timezone.now() - timedelta(seconds=pool.rollout_health_seconds + 9))
    html = row(signed_in(admin_user).get(PART).content.decode(), trying)
    assert cell(html, "canaries").startswith("0 ready, 1 failed, 0 waiting")
    assert cell(html, "waits_for") == "its verdict at the next pass"

"""Claiming and releasing in every pool mode, entitlements, limits, and the claim race."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connections
from django.test import Client

from tests.support import drain, make_version, purge
from vdi.choices import DesktopStatus
from vdi.models import AuditEvent, Desktop, GoldenImage, Pool, UserQuota
from vdi.services.capacity import maintain
from vdi.services.claims import PoolFull, PoolUnavailable, claim_desktop
from vdi.services.desktops import new_desktop, request_action
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.quotas import QuotaExceeded

pytestmark = pytest.mark.usefixtures("empty_queue")


def ready_desktop(pool: Pool) -> Desktop:
    """An unassigned desktop the warm top-up made and the worker started."""
    desktop = new_desktop(pool, None, None)
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING, pristine=True)
    desktop.refresh_from_db()
    return desktop


@pytest.fixture
def automatic(pool: Pool) -> Pool:
    pool.assignment = "automatic"
    pool.max_per_user = 1
    pool.save()
    return pool


def test_a_warm_desktop_is_handed_over_running(owner, automatic):
    warm = ready_desktop(automatic)
    purge(warm.host.queue)
    desktop = claim_desktop(owner, automatic, "192.0.2.1")
    assert desktop.pk == warm.pk and desktop.owner == owner
    assert desktop.status == DesktopStatus.RUNNING and desktop.assigned_at is not None
    assert drain(warm.host.queue) == [], "no task: nothing to boot"
    assert AuditEvent.objects.get(action="desktop.claim").details["warm"] is True


def test_with_no_warm_desktop_a_new_one_is_provisioned(owner, pool,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        desktop = claim_desktop(owner, pool)
    assert desktop.owner == owner and desktop.status == DesktopStatus.PROVISIONING
    assert [(m["task"], m["args"][0]) for m in drain(desktop.host.queue)] == [
        ("vdi.desktop_action", "provision")]


@pytest.mark.parametrize("assignment", ["automatic", "dedicated"])
def test_releasing_a_non_persistent_desktop_resets_it_for_the_next_user(
    owner, pool, assignment, django_capture_on_commit_callbacks
):
    pool.assignment = assignment
    pool.save()
    warm = ready_desktop(pool)
    desktop = claim_desktop(owner, pool)
    assert desktop.pk == warm.pk
    purge(desktop.host.queue)
    with django_capture_on_commit_callbacks(execute=True):
        request_action(owner, desktop, "release")
    desktop.refresh_from_db()
    assert desktop.owner is None and desktop.assigned_at is None
    assert desktop.status == DesktopStatus.RESETTING
    assert [m["args"][0] for m in drain(desktop.host.queue)] == ["release"]


def test_a_persistent_desktop_is_not_released_to_someone_else(owner, pool):
    pool.persistence = "persistent"
    pool.save()
    desktop = claim_desktop(owner, pool)
    assert desktop.data_disk_path.endswith("-data.qcow2")
    Desktop.objects.filter(pk=desktop.pk).update(status=DesktopStatus.RUNNING)
    with pytest.raises(ServiceError, match="keeps its user's data"):
        request_action(owner, desktop, "release")
    desktop.refresh_from_db()
    assert desktop.owner == owner


def test_member_of_a_granted_group_may_claim(member, pool):
    assert claim_desktop(member, pool).owner == member


@pytest.mark.parametrize("persona", ["outsider", "disabled_user"])
def test_users_without_entitlement_are_refused(request, pool, persona):
    with pytest.raises(AccessDenied):
        claim_desktop(request.getfixturevalue(persona), pool)
    assert not Desktop.objects.exists()


def test_admin_may_use_every_pool(admin_user, pool):
    assert claim_desktop(admin_user, pool).owner == admin_user


def test_a_draining_pool_takes_no_claims(owner, pool):
    pool.draining = True
    pool.save()
    with pytest.raises(PoolUnavailable, match="drained"):
        claim_desktop(owner, pool)


def test_a_full_pool_says_so(owner, member, pool):
    pool.max_size = 1
    pool.save()
    claim_desktop(owner, pool)
    with pytest.raises(PoolFull, match="full: all 1 desktops are in use"):
        claim_desktop(member, pool)


def test_per_pool_limit(owner, pool):
    pool.max_per_user = 1
    pool.save()
    claim_desktop(owner, pool)
    with pytest.raises(QuotaExceeded, match="the pool allows 1 per user"):
        claim_desktop(owner, pool)


@pytest.mark.parametrize(
    ("quota", "message"),
    [
        ({"max_desktops": 1}, "your limit is 1"),
        ({"max_vcpus": 1}, "needs 1 vCPU"),
        ({"max_memory_mib": 300}, "needs 256 MiB"),
    ],
)
def test_user_quotas(owner, pool, quota, message):
    UserQuota.objects.create(user=owner, **{"max_desktops": 5, "max_vcpus": 5,
                                            "max_memory_mib": 9999, **quota})
    claim_desktop(owner, pool)
    with pytest.raises(QuotaExceeded, match=message):
        claim_desktop(owner, pool)
    assert Desktop.objects.filter(owner=owner).count() == 1


def test_sign_out_gives_automatic_desktops_back(owner, automatic):
    ready_desktop(automatic)
    desktop = claim_desktop(owner, automatic)
    client = Client()
    client.force_login(owner)
    client.post("/accounts/logout/")
    desktop.refresh_from_db()
    assert desktop.owner is None and desktop.status == DesktopStatus.RESETTING
    assert AuditEvent.objects.get(action="desktop.release").details["reason"] == "sign-out"


def test_pool_settings_that_make_no_sense_are_refused(pool):
    from django.core.exceptions import ValidationError

    pool.assignment, pool.persistence = "automatic", "persistent"
    with pytest.raises(ValidationError, match="Automatic pools are non-persistent"):
        pool.full_clean()
    pool.assignment, pool.persistence, pool.min_ready, pool.max_size = (
        "dedicated", "non_persistent", 5, 2)
    with pytest.raises(ValidationError, match="more desktops ready than"):
        pool.full_clean()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("max_size", [1, 2])
def test_two_users_racing_for_the_last_desktop(owner, member, pool, max_size):
    """One gets the warm desktop; the other a new one if there is room, else 'pool is full'."""
    pool.max_size = max_size
    pool.assignment = "automatic"
    pool.save()
    warm = ready_desktop(pool)
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def claim(user) -> None:
        barrier.wait()
        try:
            results[user.username] = claim_desktop(user, pool)
        except ServiceError as exc:
            results[user.username] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(u,)) for u in (owner, member)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    got = [r for r in results.values() if isinstance(r, Desktop)]
    refused = [r for r in results.values() if isinstance(r, ServiceError)]
    assert [d.pk for d in got].count(warm.pk) == 1, "exactly one user gets the warm desktop"
    assert len({d.pk for d in got}) == len(got), "never both the same desktop"
    if max_size == 1:
        assert len(got) == 1 and isinstance(refused[0], PoolFull)
    else:
        assert len(got) == 2 and not refused
    owners = {d.owner_id for d in Desktop.objects.filter(owner__isnull=False)}
    assert len(owners) == len(got)


def test_maintain_tops_up_and_trims(pool, host):
    pool.assignment, pool.min_ready, pool.max_size = "automatic", 2, 3
    pool.save()
    assert maintain(pool).create == 2
    assert pool.desktops.filter(owner__isnull=True).count() == 2
    assert maintain(pool).create == 0, "provisioning ones count as on their way"
    Desktop.objects.filter(pool=pool).update(status=DesktopStatus.RUNNING, pristine=True)
    pool.min_ready = 1
    pool.save()
    steps = maintain(pool)
    assert (steps.create, steps.remove) == (0, 1)
    assert pool.desktops.filter(status=DesktopStatus.DELETING).count() == 1


def test_a_pool_whose_image_is_being_built_waits_quietly_then_tops_up(pool, host, caplog):
    pool.assignment, pool.min_ready = "automatic", 1
    pool.image = GoldenImage.objects.create(name="being-built")
    pool.save()
    with caplog.at_level(logging.WARNING):
        assert maintain(pool).create == 0
    assert not pool.desktops.exists() and "can't add a ready desktop" not in caplog.text
    make_version("being-built", "/nonexistent/built.qcow2")
    assert maintain(pool).create == 1
    assert pool.desktops.filter(owner__isnull=True).count() == 1


def test_a_claim_holds_the_pool_lock(owner, pool):
    """PostgreSQL: the claim locks the pool row. SQLite: every write transaction begins
    IMMEDIATE, taking the database's write lock before the claim reads anything."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        claim_desktop(owner, pool)
    sql = [q["sql"] for q in queries.captured_queries]
    if connection.vendor == "postgresql":
        locks = [s for s in sql if "FOR UPDATE" in s]
        assert locks and '"vdi_pool"' in locks[0]
        assert sql.index(locks[0]) < min(i for i, s in enumerate(sql) if "vdi_desktop" in s)
    else:
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"

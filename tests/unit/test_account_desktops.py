"""What happens to a person's desktops when their account goes (``services.accounts``), and
to desktops that lost their user without a reset (``services.claims``, ``services.capacity``).

A disabled or deleted account's non-persistent desktops are released (reset before anyone may
have them); its persistent ones are stopped and kept for an administrator, never claimable by
someone else. A desktop is handed to the next user only when the worker's reset made it
pristine: an unowned one that is not pristine is never claimed, and pool maintenance resets
it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import drain
from vdi.choices import DesktopStatus
from vdi.models import AuditEvent, Desktop
from vdi.services.capacity import maintain
from vdi.services.claims import PoolFull, claim_desktop

pytestmark = pytest.mark.django_db


def disable(user: Any) -> None:
    user.is_active = False
    user.save()


def delete(user: Any) -> None:
    user.delete()


ACCOUNT_ENDS = {"disabled": (disable, "account disabled"), "deleted": (delete, "account deleted")}


def queued(desktop: Desktop) -> list[tuple[str, int]]:
    return [(m["args"][0], m["args"][1]) for m in drain(desktop.host.queue)]


@pytest.mark.parametrize("how", list(ACCOUNT_ENDS))
@pytest.mark.parametrize("status", [DesktopStatus.RUNNING, DesktopStatus.STOPPED])
def test_a_closed_accounts_non_persistent_desktop_is_released_and_reset(
        how, status, owner, running_desktop, empty_queue, django_capture_on_commit_callbacks):
    end, why = ACCOUNT_ENDS[how]
    Desktop.objects.filter(pk=running_desktop.pk).update(status=status)
    with django_capture_on_commit_callbacks(execute=True):
        end(owner)
    running_desktop.refresh_from_db()
    assert running_desktop.owner is None, "back to the pool"
    assert running_desktop.status == DesktopStatus.RESETTING
    assert not running_desktop.pristine, "not the next user's until the worker has reset it"
    assert queued(running_desktop) == [("release", running_desktop.pk)]
    event = AuditEvent.objects.get(action="desktop.release")
    assert event.actor is None and event.details == {"reason": why}


@pytest.mark.parametrize("how", list(ACCOUNT_ENDS))
def test_a_closed_accounts_persistent_desktop_is_stopped_and_kept(
        how, owner, persistent_desktop, empty_queue, django_capture_on_commit_callbacks):
    end, why = ACCOUNT_ENDS[how]
    with django_capture_on_commit_callbacks(execute=True):
        end(owner)
    persistent_desktop.refresh_from_db()
    assert persistent_desktop.status == DesktopStatus.STOPPING
    assert persistent_desktop.data_disk_path, "kept with its data for an administrator"
    assert queued(persistent_desktop) == [("stop", persistent_desktop.pk)]
    assert AuditEvent.objects.get(action="desktop.stop").details == {"reason": why}
    if how == "disabled":
        assert persistent_desktop.owner == owner, "still theirs (an administrator decides)"


@pytest.mark.parametrize("how", list(ACCOUNT_ENDS))
def test_a_stopped_persistent_desktop_of_a_closed_account_stays_as_it_is(
        how, owner, persistent_desktop, empty_queue, django_capture_on_commit_callbacks):
    end, _ = ACCOUNT_ENDS[how]
    Desktop.objects.filter(pk=persistent_desktop.pk).update(status=DesktopStatus.STOPPED)
    with django_capture_on_commit_callbacks(execute=True):
        end(owner)
    persistent_desktop.refresh_from_db()
    assert persistent_desktop.status == DesktopStatus.STOPPED
    assert queued(persistent_desktop) == []


@pytest.mark.parametrize("how", list(ACCOUNT_ENDS))
@pytest.mark.parametrize("status", [DesktopStatus.RUNNING, DesktopStatus.STOPPED])
def test_a_kept_persistent_desktop_is_never_claimed_by_someone_else(
        how, status, owner, member, persistent_desktop, empty_queue):
    """Whatever state it is left in (a failed stop leaves it running), the next claim of the
    pool makes a new desktop rather than hand over the old user's data."""
    end, _ = ACCOUNT_ENDS[how]
    end(owner)
    kept = Desktop.objects.get(pk=persistent_desktop.pk)
    Desktop.objects.filter(pk=kept.pk).update(status=status)
    got = claim_desktop(member, persistent_desktop.pool)
    assert got.pk != kept.pk and got.status == DesktopStatus.PROVISIONING
    after = Desktop.objects.get(pk=kept.pk)
    assert (after.owner_id, after.status) == (kept.owner_id, status)


def test_pool_maintenance_leaves_a_kept_persistent_desktop_alone(owner, persistent_desktop,
                                                               empty_queue):
    delete(owner)
    Desktop.objects.filter(pk=persistent_desktop.pk).update(status=DesktopStatus.STOPPED)
    maintain(persistent_desktop.pool)
    after = Desktop.objects.get(pk=persistent_desktop.pk)
    assert after.status == DesktopStatus.STOPPED and after.owner is None
    assert not AuditEvent.objects.filter(action="desktop.release").exists()


# --- orphans: unowned, not reset since their last user --------------------------------------

def orphan(desktop: Desktop, status: str = DesktopStatus.RUNNING) -> Desktop:
    """The desktop lost its owner without a reset (an admin cleared the owner, a crash in the
    middle of a release)."""
    Desktop.objects.filter(pk=desktop.pk).update(owner=None, status=status, pristine=False)
    desktop.refresh_from_db()
    return desktop


@pytest.mark.parametrize("assignment", ["automatic", "dedicated"])
def test_an_orphan_is_never_handed_out_by_a_claim(assignment, member, pool, running_desktop,
                                                  empty_queue):
    pool.assignment = assignment
    pool.save()
    left = orphan(running_desktop)
    got = claim_desktop(member, pool)
    assert got.pk != left.pk and got.status == DesktopStatus.PROVISIONING
    left.refresh_from_db()
    assert left.owner is None and left.status == DesktopStatus.RUNNING


def test_a_pristine_one_is_handed_out_the_same_way_for_comparison(member, pool, running_desktop,
                                                                  empty_queue):
    left = orphan(running_desktop)
    Desktop.objects.filter(pk=left.pk).update(pristine=True)
    assert claim_desktop(member, pool).pk == left.pk


def test_a_full_pool_refuses_rather_than_hand_out_an_orphan(member, pool, running_desktop,
                                                            empty_queue):
    pool.max_size = 1
    pool.save()
    left = orphan(running_desktop)
    with pytest.raises(PoolFull):
        claim_desktop(member, pool)
    left.refresh_from_db()
    assert left.owner is None


@pytest.mark.parametrize("status", [DesktopStatus.RUNNING, DesktopStatus.STOPPED,
                                    DesktopStatus.ERROR])
def test_pool_maintenance_resets_orphans(status, pool, running_desktop, empty_queue,
                                         django_capture_on_commit_callbacks):
    left = orphan(running_desktop, status)
    with django_capture_on_commit_callbacks(execute=True):
        maintain(pool)
    left.refresh_from_db()
    assert left.status == DesktopStatus.RESETTING and left.owner is None
    assert ("release", left.pk) in queued(left)
    event = AuditEvent.objects.get(action="desktop.release")
    assert event.details == {"reason": "left by its user without a reset"}


def test_pool_maintenance_leaves_an_owned_desktop_alone(owner, pool, running_desktop,
                                                         empty_queue):
    maintain(pool)
    running_desktop.refresh_from_db()
    assert running_desktop.status == DesktopStatus.RUNNING and running_desktop.owner == owner
    assert not AuditEvent.objects.filter(action="desktop.release").exists()

"""Pool semantics on real guests: what survives a release, a restart and a reset, and a warm
pool that hands over a running desktop without booting it."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.guest import ask, serial, wait_serial
from tests.support import wait_status
from vdi.choices import DesktopStatus
from vdi.images.tiny import READY_MARKER
from vdi.models import Desktop, Operation
from vdi.services.capacity import maintain
from vdi.services.claims import claim_desktop
from vdi.services.desktops import request_action
from vdi.testing.processes import wait_for

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def test_non_persistent_desktop_forgets_everything_on_release(worker, tiny_pool, owner):
    tiny_pool.assignment, tiny_pool.max_size = "automatic", 1
    tiny_pool.save()
    desktop = claim_desktop(owner, tiny_pool)
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER)
    mark = secrets.token_hex(3)
    ask(desktop, f"echo {mark} > /root/f; sync; echo W{mark} > /dev/ttyS0", f"W{mark}")

    request_action(owner, desktop, "release")
    wait_status(desktop, DesktopStatus.RUNNING)
    assert desktop.owner is None, "back in the pool, unassigned"
    again = claim_desktop(owner, tiny_pool)
    assert again.pk == desktop.pk and again.status == DesktopStatus.RUNNING
    wait_serial(again.serial_log_path, READY_MARKER)
    ask(again, "test -e /root/f && echo PRESENT > /dev/ttyS0 || echo ABSENT > /dev/ttyS0",
        "ABSENT")
    assert "PRESENT" not in serial(again.serial_log_path)


def test_persistent_desktop_keeps_its_data_disk(worker, tiny_pool, owner):
    tiny_pool.persistence = "persistent"
    tiny_pool.save()
    desktop = claim_desktop(owner, tiny_pool)
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, "VDI-DATA-MOUNTED")
    wait_serial(desktop.serial_log_path, READY_MARKER)
    keep, lose = f"keep{secrets.token_hex(3)}", f"lose{secrets.token_hex(3)}"
    ask(desktop, f"echo {keep} > /data/f; echo {lose} > /root/g; sync; echo SAVED > /dev/ttyS0",
        "SAVED")

    request_action(owner, desktop, "restart")
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER, count=2)
    ask(desktop, "cat /data/f /root/g > /dev/ttyS0", lose)
    assert keep in serial(desktop.serial_log_path), "data and system disk survive a restart"

    request_action(owner, desktop, "reset")
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER)
    ask(desktop, "cat /data/f > /dev/ttyS0; test -e /root/g || echo NOG > /dev/ttyS0", "NOG")
    assert keep in serial(desktop.serial_log_path), "the data disk survives a reset"
    assert desktop.data_disk_path and desktop.owner == owner


def test_warm_pool_hands_over_a_running_desktop_without_a_boot(worker, tiny_pool, owner):
    tiny_pool.assignment, tiny_pool.min_ready, tiny_pool.max_size = "automatic", 2, 3
    tiny_pool.save()
    assert maintain(tiny_pool).create == 2
    warm = list(Desktop.objects.filter(pool=tiny_pool))
    for desktop in warm:
        wait_status(desktop, DesktopStatus.RUNNING)
        wait_serial(desktop.serial_log_path, READY_MARKER)

    claimed = claim_desktop(owner, tiny_pool)
    assert claimed.status == DesktopStatus.RUNNING, "running at the moment it is handed over"
    assert claimed.pk in {d.pk for d in warm}
    time.sleep(3)
    assert serial(claimed.serial_log_path).count(READY_MARKER) == 1, "it did not boot again"
    assert not Operation.objects.filter(desktop=claimed).exclude(kind="provision").exists()

    assert maintain(tiny_pool).create == 1, "the pool makes up for the one handed out"
    wait_for(lambda: Desktop.objects.filter(pool=tiny_pool, owner__isnull=True,
                                            status=DesktopStatus.RUNNING).count() == 2, 120,
             "the pool to be back at two ready desktops")


def test_a_deleted_users_desktop_reaches_the_next_user_only_after_a_reset(
        worker, tiny_pool, owner, outsider):
    """The first user leaves a file and an open console, then their account is deleted: the
    console closes, and the next user of the pool gets the desktop reset to its image."""
    from tests.console_helpers import (
        closing_of,
        communicator,
        greeted,
        run,
        session_cookie,
        ticket_for,
    )
    from vdi.console.codes import CloseCode

    tiny_pool.assignment, tiny_pool.max_size = "automatic", 1
    tiny_pool.save()
    tiny_pool.users.add(outsider)
    desktop = claim_desktop(owner, tiny_pool)
    wait_status(desktop, DesktopStatus.RUNNING)
    wait_serial(desktop.serial_log_path, READY_MARKER)
    mark = secrets.token_hex(3)
    ask(desktop, f"echo {mark} > /root/f; sync; echo W{mark} > /dev/ttyS0", f"W{mark}")
    session = session_cookie(owner)
    desktop.refresh_from_db()
    ticket = ticket_for(owner, session, desktop)

    async def delete_while_watching() -> None:
        import asyncio

        ws = await greeted(communicator(desktop.pk, session, ticket))
        await asyncio.to_thread(owner.delete)
        assert await closing_of(ws) == {"type": "websocket.close",
                                        "code": CloseCode.ACCOUNT_CLOSED}

    run(delete_while_watching)
    wait_for(lambda: Operation.objects.filter(desktop=desktop, kind="release").exists(), 10,
             "the deleted user's desktop to be released")
    wait_status(desktop, DesktopStatus.RUNNING)
    desktop.refresh_from_db()
    assert desktop.owner is None and desktop.pristine
    again = claim_desktop(outsider, tiny_pool)
    assert again.pk == desktop.pk and again.owner == outsider
    wait_serial(again.serial_log_path, READY_MARKER)
    ask(again, "test -e /root/f && echo PRESENT > /dev/ttyS0 || echo ABSENT > /dev/ttyS0",
        "ABSENT")
    assert mark not in serial(again.serial_log_path)

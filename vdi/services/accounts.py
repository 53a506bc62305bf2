"""What happens to a person's desktops and consoles when their account changes.

A disabled or deleted account's consoles close at once; its non-persistent desktops are
released (reset to the image before anyone else may have them) and its persistent ones are
stopped and kept, with their data, for an administrator (never claimable by someone else; a
hand-over is an explicit, audited administrator action). A changed password ends the user's
consoles and revokes their API tokens; other changes (groups, grants, sessions) make their
consoles check their access again at once.
"""

from __future__ import annotations

import logging

from django.db import transaction

from vdi.choices import DesktopStatus
from vdi.console.codes import CloseCode
from vdi.console.notify import close_user_consoles, recheck_user_consoles
from vdi.models import ConsoleTicket, Desktop
from vdi.services import tokens
from vdi.services.access import Account
from vdi.services.desktops import perform
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

log = logging.getLogger(__name__)


def account_closed(user: Account, why: str) -> None:
    """``user`` was disabled or is being deleted (call inside that transaction)."""
    ConsoleTicket.objects.filter(user=user, used_at__isnull=True).delete()
    user_id = user.pk
    transaction.on_commit(lambda: close_user_consoles(user_id, CloseCode.ACCOUNT_CLOSED, why))
    for desktop in Desktop.objects.filter(owner=user).select_related("pool", "host"):
        if desktop.pool is None or desktop.pool.is_persistent:  # theirs, or an installation
            name = "stop" if desktop.status == DesktopStatus.RUNNING else ""
        else:
            name = "release"
        if not name:
            continue
        try:
            perform(desktop, name, None, reason=why)
        except (ServiceError, TransitionRefused) as exc:  # e.g. busy: the reconciler follows
            log.warning("%s of %s after '%s' skipped: %s", name, desktop, why, exc)


def password_changed(user: Account) -> None:
    """A changed or reset password ends the user's consoles and revokes their API tokens."""
    tokens.revoke_all(user, "password changed")
    user_id = user.pk
    transaction.on_commit(lambda: close_user_consoles(
        user_id, CloseCode.CREDENTIALS_CHANGED, "password changed"))


def access_changed(user_id: int) -> None:
    """Groups, grants or sessions of the user changed: open consoles check again now."""
    transaction.on_commit(lambda: recheck_user_consoles(user_id))

"""Files between the user's browser and their desktop: an upload lands in the desktop's
Downloads folder, and files the user puts in the desktop's Shared folder can be downloaded.

The web tier only handles the portal's spool folder (``VDI_SPOOL_DIR``); the desktop's worker
moves the bytes through the guest agent, as the desktop's user (``vdi.worker.transfers``).
Who may: whoever may use the desktop's console interactively (not a watcher), on a desktop
with a session agent, while it runs; at most ``VDI_FILE_TRANSFER_MAX_BYTES`` a file.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from portal.limits import FILE_TRANSFER
from vdi import task_names
from vdi.choices import DesktopStatus
from vdi.folders import shared_folder
from vdi.models import Desktop, FileTransfer
from vdi.names import refused_character, shown
from vdi.services import access, audit, dispatch
from vdi.services.access import Account, ConsoleMode, User
from vdi.services.errors import AccessDenied, ServiceError
from vdi.services.preferences import has_session_agent
from vdi.services.uploads import NotStored, check_length, storing, write_capped

log = logging.getLogger(__name__)
NOT_STORED = "The portal could not store the file; an administrator has been told the cause."
NAME = re.compile(r"[^/\\]{1,200}")  # and no character vdi.names refuses
RECENT = 10  # transfers shown on the console page


def check_name(name: str) -> str:
    """A plain file name: no folders, not hidden, at most 200, and no character a name may
    not hold (``vdi.names``: a right-to-left override would show it reversed)."""
    if (char := refused_character(name)) is not None:
        raise ServiceError(f"{name!r} holds {char}: file names may not hold control or "
                           "invisible formatting characters (they change how a name reads)")
    if not NAME.fullmatch(name) or name.startswith(".") or name.strip() != name:
        raise ServiceError(f"{name!r} is not a plain file name (no folders, not hidden, no "
                           "control characters, at most 200 characters)")
    return name


def check_may_transfer(user: User, desktop: Desktop) -> None:
    if access.console_mode(user, desktop) is not ConsoleMode.INTERACTIVE:
        raise AccessDenied("You may not move files to or from this desktop.")
    if not has_session_agent(desktop):
        raise ServiceError("this desktop has no guest agent in its session to take files")
    if desktop.status != DesktopStatus.RUNNING:
        raise ServiceError(f"the desktop is {desktop.status}: start it first")


def upload(user: Account, desktop: Desktop, name: str, chunks: Iterator[bytes],
           length: int | None, source_address: str | None = None) -> FileTransfer:
    """Spool the browser's file and have the worker put it in the desktop's Downloads."""
    check_may_transfer(user, desktop)
    check_name(name)
    check_length(FILE_TRANSFER, length)
    folder = Path(settings.SPOOL_DIR)
    spool = folder / f"in-{uuid.uuid4().hex}"
    try:
        with storing(folder, "VDI_SPOOL_DIR"):
            shared_folder(folder)
            size = write_capped(spool, chunks, FILE_TRANSFER)
        with transaction.atomic():
            transfer = FileTransfer.objects.create(
                desktop=desktop, user=user, direction=FileTransfer.Direction.IN, name=name,
                size_bytes=size, spool_path=str(spool))
            audit.record(user, "file.upload", desktop, source_address, name=name, size=size)
            _send_after_commit(task_names.PUSH_FILE, transfer)
    except BaseException as exc:
        with suppress(OSError):
            spool.unlink(missing_ok=True)
        if isinstance(exc, NotStored):  # the portal's side: its cause is for operators
            log.error("file upload not stored: %s", exc)
            raise ServiceError(NOT_STORED) from exc
        raise
    return transfer


def request_download(user: Account, desktop: Desktop, name: str,
                     source_address: str | None = None) -> FileTransfer:
    """Have the worker copy ``name`` from the desktop's Shared folder to the spool."""
    check_may_transfer(user, desktop)
    check_name(name)
    with transaction.atomic():
        transfer = FileTransfer.objects.create(
            desktop=desktop, user=user, direction=FileTransfer.Direction.OUT, name=name)
        audit.record(user, "file.download", desktop, source_address, name=name)
        _send_after_commit(task_names.PULL_FILE, transfer)
    return transfer


def request_listing(user: Account, desktop: Desktop) -> None:
    """Have the worker look at the desktop's Shared folder again."""
    check_may_transfer(user, desktop)
    _send(task_names.LIST_SHARED, desktop, desktop.pk)


def status(user: Account, desktop: Desktop) -> dict[str, Any]:
    """What the console's Files panel shows: the Shared folder as last seen, and the user's
    recent transfers with this desktop."""
    check_may_transfer(user, desktop)
    transfers = FileTransfer.objects.filter(desktop=desktop, user=user)[:RECENT]
    facts = desktop.guest_facts or {}
    return {
        "shared": [_as_shown(entry) for entry in facts.get("shared", [])],
        "shared_error": facts.get("shared_error", ""),
        "limit": FILE_TRANSFER.max_bytes,
        "transfers": [{"id": t.pk, "name": t.name, "direction": t.direction,
                       "status": t.status, "size": t.size_bytes, "error": t.error}
                      for t in transfers],
    }


def _as_shown(entry: dict[str, Any]) -> dict[str, Any]:
    """A file the guest listed, with its name as it may be shown, and why it cannot be
    downloaded when its name holds a character names may not (it would read reversed)."""
    name = str(entry.get("name", ""))
    refused = refused_character(name)
    return {**entry, "shown": shown(name),
            "refused": f"its name holds {refused}: rename it in the desktop" if refused else ""}


def downloaded_file(user: Account, transfer_id: int) -> FileTransfer:
    """A finished download of this user's, whose bytes are in the spool."""
    transfer = FileTransfer.objects.filter(
        pk=transfer_id, user=user, direction=FileTransfer.Direction.OUT,
        status=FileTransfer.Status.DONE).first()
    if transfer is None or not Path(transfer.spool_path).is_file():
        raise AccessDenied("No such download (it may have expired).")
    return transfer


def _send_after_commit(task: str, transfer: FileTransfer) -> None:
    desktop = transfer.desktop
    transaction.on_commit(lambda: _send(task, desktop, transfer.pk))


def _send(task: str, desktop: Desktop, argument: int) -> None:
    try:
        dispatch.send(task, (argument,), desktop.host.queue)
    except (KombuOperationalError, ConnectionError, OSError) as exc:
        log.error("could not queue %s for %s: %s", task, desktop, exc)
        if task != task_names.LIST_SHARED:
            FileTransfer.objects.filter(pk=argument).update(
                status=FileTransfer.Status.FAILED, error=f"the worker could not be asked: {exc}")


SPOOL_KEPT = timedelta(days=1)  # a finished download can be saved for this long


def purge(now: datetime) -> int:
    """Spooled files of transfers finished a day ago go; rows after ``VDI_HISTORY_DAYS``."""
    stale = FileTransfer.objects.filter(finished_at__lt=now - SPOOL_KEPT).exclude(spool_path="")
    for transfer in stale:
        Path(transfer.spool_path).unlink(missing_ok=True)
    stale.update(spool_path="")
    cutoff = now - timedelta(days=settings.HISTORY_DAYS)
    return int(FileTransfer.objects.filter(created_at__lt=cutoff).delete()[0])

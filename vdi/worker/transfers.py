"""Moving files through a desktop's guest agent. Every step in the user's folders runs as
the desktop's user (so a link there reaches nothing the user could not read or write):
uploads are written by the agent into a root-owned staging folder the user cannot touch, then
copied by the user into ``~/Downloads`` under a free name; downloads are read from
``~/Shared`` by the user, 1 MiB an agent command (each command stays within the agent's
timeout, even under software emulation)."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from vdi.hypervisor import HypervisorError
from vdi.models import Desktop, FileTransfer
from vdi.services.transfers import check_name
from vdi.worker.hosts import driver_for
from vdi.worker.session import session_user

log = logging.getLogger(__name__)
READ_CHUNK = 1024 * 1024  # bytes read per agent command
STAGING = "/var/lib/vdi-transfers"  # root's, in the guest: uploads before the user copies them
TIMEOUT = 120
ATTEMPTS = 4  # a busy guest agent ("not available for now") is asked again after 1, 2, 4 s

PLACE = ('d="$HOME/Downloads"; mkdir -p "$d"; name="$1"; stem="${name%.*}"; ext=""; '
         '[ "$stem" != "$name" ] && [ -n "$stem" ] && ext=".${name##*.}" || stem="$name"; '
         'f="$d/$name"; n=1; while [ -e "$f" ]; do f="$d/$stem ($n)$ext"; n=$((n+1)); done; '
         'cp -- "$2" "$f" && printf %s "$f"')
SIZE = 'f="$HOME/Shared/$1"; [ -f "$f" ] || exit 3; stat -c %s -- "$f"'
READ = 'dd if="$HOME/Shared/$1" bs=1M skip="$2" count="$3" status=none'
LIST = ('d="$HOME/Shared"; mkdir -p "$d"; '
        'find "$d" -mindepth 1 -maxdepth 1 -type f ! -name ".*" -printf "%s\\t%f\\n"')


class TransferError(Exception):
    pass


def as_user(desktop: Desktop, script: str, *args: str, stdin: bytes | None = None) -> bytes:
    """Run ``script`` as the desktop's user; a busy agent is asked again (every script here
    may run twice: reads are reads, and a copy lands under a new free name)."""
    user = session_user(desktop)
    if user is None:
        raise TransferError("nobody is signed in to the desktop yet")
    for attempt in range(ATTEMPTS):
        try:
            code, out, err = driver_for(desktop.host).agent.run_bytes(
                desktop.domain_name, "/usr/sbin/runuser",
                ["-u", user, "--", "sh", "-c", script, "sh", *args], TIMEOUT, stdin=stdin)
            break
        except HypervisorError as exc:
            if not exc.retryable or attempt == ATTEMPTS - 1:
                raise
            time.sleep(2 ** attempt)
    if code != 0:
        raise TransferError(err.decode(errors="replace").strip()[:300] or f"exit code {code}")
    return out


def push_file(transfer_id: int) -> str:
    transfer = FileTransfer.objects.select_related("desktop__host").get(pk=transfer_id)
    desktop, spool = transfer.desktop, Path(transfer.spool_path)
    agent = driver_for(desktop.host).agent
    staged = f"{STAGING}/{transfer.pk}"
    try:
        agent.run(desktop.domain_name, "/bin/mkdir", ["-p", "-m", "0755", STAGING])
        with spool.open("rb") as source:
            agent.write_file_from(desktop.domain_name, staged, source)
        placed = as_user(desktop, PLACE, check_name(transfer.name), staged)
    except (TransferError, HypervisorError, OSError) as exc:
        return _failed(transfer, f"not copied into the desktop: {exc}")
    finally:
        spool.unlink(missing_ok=True)
        with contextlib.suppress(HypervisorError):
            agent.run(desktop.domain_name, "/bin/rm", ["-f", staged])
    _done(transfer, transfer.size_bytes)
    return placed.decode(errors="replace")


def pull_file(transfer_id: int) -> str:
    transfer = FileTransfer.objects.select_related("desktop__host").get(pk=transfer_id)
    name = check_name(transfer.name)
    spool = Path(settings.SPOOL_DIR) / f"out-{transfer.pk}"
    try:
        size = int(as_user(transfer.desktop, SIZE, name).decode().strip())
        if size > settings.FILE_TRANSFER_MAX_BYTES:
            return _failed(transfer, f"{size} bytes: files take at most "
                                     f"{settings.FILE_TRANSFER_MAX_BYTES} bytes")
        spool.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with spool.open("wb") as target:
            for block in range(max(1, -(-size // READ_CHUNK))):
                target.write(as_user(transfer.desktop, READ, name, str(block), "1"))
    except (TransferError, HypervisorError, OSError, ValueError) as exc:
        spool.unlink(missing_ok=True)
        return _failed(transfer, f"not copied out of the desktop: {exc}")
    FileTransfer.objects.filter(pk=transfer.pk).update(spool_path=str(spool))
    _done(transfer, spool.stat().st_size)
    return str(spool)


def list_shared(desktop_id: int) -> str:
    desktop = Desktop.objects.select_related("host").get(pk=desktop_id)
    facts = dict(desktop.guest_facts or {})
    try:
        lines = as_user(desktop, LIST).decode(errors="replace").splitlines()
    except (TransferError, HypervisorError) as exc:
        facts["shared_error"] = str(exc)
    else:
        files = [line.split("\t", 1) for line in lines if "\t" in line]
        facts["shared"] = sorted(({"name": name, "size": int(size)} for size, name in files),
                                 key=lambda f: str(f["name"]))
        facts["shared_error"] = ""
    facts["shared_at"] = timezone.now().isoformat()
    Desktop.objects.filter(pk=desktop.pk).update(guest_facts=facts)
    return f"{len(facts.get('shared', []))} files"


def _done(transfer: FileTransfer, size: int) -> None:
    FileTransfer.objects.filter(pk=transfer.pk).update(
        status=FileTransfer.Status.DONE, size_bytes=size, finished_at=timezone.now())


def _failed(transfer: FileTransfer, why: str) -> str:
    log.warning("file transfer %s of %s failed: %s", transfer.pk, transfer.desktop, why)
    FileTransfer.objects.filter(pk=transfer.pk).update(
        status=FileTransfer.Status.FAILED, error=why, finished_at=timezone.now())
    return why

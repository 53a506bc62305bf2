"""Helpers shared by the tests (fixtures live in the conftest files): image version rows,
waiting for a desktop's state or an operation's end, signed-in clients, and reading what
Celery published to Redis without a worker consuming it."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.test import Client

from vdi.choices import DesktopStatus
from vdi.folders import service_user
from vdi.models import Desktop, GoldenImage, ImageVersion, Operation
from vdi.testing.processes import wait_for

__all__ = ["done", "drain", "is_gone", "make_version", "process_ended", "purge", "signed_in",
           "status_of", "wait_for", "wait_gone", "wait_status"]


def make_version(image_name: str, disk_path: str, **files: str) -> ImageVersion:
    image, _ = GoldenImage.objects.get_or_create(name=image_name)
    number = image.versions.count() + 1
    return ImageVersion.objects.create(
        image=image, number=number, disk_path=disk_path, size_bytes=1, virtual_size_bytes=1,
        sha256=hashlib.sha256(disk_path.encode()).hexdigest(), **files,
    )


def signed_in(user: Any, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def status_of(desktop: Desktop) -> str:
    desktop.refresh_from_db()
    return desktop.status


def wait_status(desktop: Desktop, wanted: str, timeout: float = 120) -> None:
    """Wait until the desktop reaches ``wanted``; fail at once if it goes to error."""

    def reached() -> bool:
        current = status_of(desktop)
        assert current != DesktopStatus.ERROR, f"desktop failed: {desktop.error_detail}"
        return current == wanted

    wait_for(reached, timeout, f"desktop to be {wanted}")


def done(operation: Operation, desktop: Desktop, status: str) -> None:
    """Wait for ``operation`` to finish without an error and the desktop to be ``status``."""
    wait_for(lambda: Operation.objects.get(pk=operation.pk).finished_at is not None, 180,
             f"the {operation.kind}")
    operation.refresh_from_db()
    assert not operation.error, operation.detail
    wait_status(desktop, status)


def process_ended(process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    return lambda: process.poll() is not None


def is_gone(desktop: Desktop) -> bool:
    return not Desktop.objects.filter(pk=desktop.pk).exists()


def wait_gone(desktop: Desktop, timeout: float = 120) -> None:
    """Wait until a deleted desktop has left the table (archived as a DeletedDesktop)."""
    wait_for(lambda: is_gone(desktop), timeout, f"desktop {desktop.pk} to be deleted")


def queue_key(queue: str) -> str:
    """The Redis key of a Celery queue: its name behind the installation's key prefix."""
    return f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix']}{queue}"


def drain(queue: str) -> list[dict[str, Any]]:
    """Pop every message of ``queue``: a list of {"task": name, "args": [...]}."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    messages = []
    while (raw := client.rpop(queue_key(queue))) is not None:
        envelope = json.loads(raw)  # type: ignore[arg-type]
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "args": body[0]})
    return messages


def purge(queue: str) -> None:
    """Empty one of this installation's queues (never another's: the key has its prefix)."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(queue_key(queue))


def as_the_service_wrote_it(path: Path) -> Path:
    """A file a test planted (as root) where the portal's processes keep theirs, given to the
    service user as if one of them had written it (they run as that user)."""
    user = service_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path

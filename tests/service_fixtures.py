"""The tests' database belongs to the service user, as scripts/run's does: the processes the
tests start (daphne, the worker, beat, through ``scripts/service``) run as that user and must
write it. ``tests/conftest.py`` overrides pytest-django's ``django_db_setup`` with this."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from django.conf import settings

from vdi.folders import service_user


def give_database_to(user: str) -> list[Path]:
    """An SQLite test database (and its WAL files) owned by ``user``; SQLite, run by root,
    gives the WAL files it makes later the database file's owner too."""
    database = settings.DATABASES["default"]
    if not database["ENGINE"].endswith("sqlite3"):
        return []
    entry = pwd.getpwnam(user)
    given = []
    name = Path(str(database["NAME"]))
    for path in (name, name.with_name(name.name + "-wal"), name.with_name(name.name + "-shm")):
        if path.exists():
            os.chown(path, entry.pw_uid, entry.pw_gid)
            given.append(path)
    return given


def give_database_to_service_user() -> None:
    user = service_user()
    if user is not None:
        give_database_to(user)

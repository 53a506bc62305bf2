"""Database calls from the console's and the live pages' consumers.

Channels runs ``database_sync_to_async`` on the one thread that every consumer shares with its
session and user middleware, so a console's bookkeeping (audit rows, session rows, recordings)
queued in front of the next console's opening: a console closing as another opened (a page
reloaded) delayed the new one's socket by 50-100 ms. These calls take a thread of asgiref's
pool instead, each with its own database connection, as Django's views do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def db_call(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``func`` to await from a consumer, on a pool thread with its own connection."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(func, thread_sensitive=False))

"""Limits in front of the console, counted in Redis (shared by every portal process), so that
a flood of connects costs no database writes.

- Websocket connects and ticket requests are rate-limited per address and per user
  (``VDI_CONSOLE_RATE_LIMIT``, ``VDI_TICKET_RATE_LIMIT``: rules like ``30/m/ip,20/m/user``).
- Refused connects are counted per source address and reason; ``flush_refusals`` (beat)
  writes one aggregated audit row per source and interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter

import redis
import redis.asyncio as aioredis
from django.conf import settings

from portal.rates import Rate, parse_rates
from vdi.models import AuditEvent

log = logging.getLogger(__name__)
def _key(*parts: object) -> str:
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(p) for p in parts)])


def _rate_keys(kind: str, rates: list[Rate], address: str | None,
               user_id: int | None) -> list[tuple[str, Rate]]:
    """One counter per rule and source; it lives ``seconds`` from its first event."""
    keys = []
    for rate in rates:
        who = address if rate.scope == "ip" else user_id
        if who is not None:
            keys.append((_key("rate", kind, rate.scope, rate.seconds, who), rate))
    return keys


_sync_client: redis.Redis | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary())


def sync_client() -> redis.Redis:
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    return _sync_client


def async_client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = aioredis.Redis.from_url(settings.REDIS_URL,
                                                                socket_timeout=5)
    return client


def allow_ticket(address: str | None, user_id: int | None) -> bool:
    """Count a ticket request; False when one of the limits is passed."""
    allowed = True
    for key, rate in _rate_keys("ticket", parse_rates(settings.TICKET_RATE_LIMIT), address,
                                user_id):
        pipe = sync_client().pipeline()
        pipe.incr(key)
        pipe.expire(key, rate.seconds, nx=True)
        allowed = allowed and int(pipe.execute()[0]) <= rate.count
    return allowed


async def allow_connect(address: str | None, user_id: int | None) -> bool:
    """Count a console connect; False when one of the limits is passed."""
    allowed = True
    for key, rate in _rate_keys("connect", parse_rates(settings.CONSOLE_RATE_LIMIT), address,
                                user_id):
        async with async_client().pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, rate.seconds, nx=True)
            count, _ = await pipe.execute()
        allowed = allowed and int(count) <= rate.count
    return allowed


def _bucket(now: float) -> int:
    return int(now // settings.REFUSAL_AUDIT_INTERVAL)


async def count_refusal(address: str | None, reason: str) -> None:
    """Remember a refused connect (one Redis call, no database write)."""
    key = _key("refusals", _bucket(time.time()))
    try:
        async with async_client().pipeline() as pipe:
            pipe.hincrby(key, f"{address or '-'} {reason}", 1)
            pipe.expire(key, settings.REFUSAL_AUDIT_INTERVAL * 10)
            await pipe.execute()
    except redis.RedisError as exc:
        log.warning("could not count a console refusal: %s", exc)


def flush_refusals(now: float | None = None) -> int:
    """Write one audit row per source address for each finished interval; returns how many."""
    current = _bucket(now if now is not None else time.time())
    written = 0
    for bucket in range(current - 9, current):
        pipe = sync_client().pipeline()  # read and delete at once: no count is lost or doubled
        pipe.hgetall(_key("refusals", bucket))
        pipe.delete(_key("refusals", bucket))
        counts, _ = pipe.execute()
        by_source: dict[str, Counter[str]] = {}
        for field, count in counts.items():
            source, _, reason = field.decode().partition(" ")
            by_source.setdefault(source, Counter())[reason] += int(count)
        for source, reasons in sorted(by_source.items()):
            AuditEvent.objects.create(
                action="console.refused", source_address=None if source == "-" else source,
                details={"attempts": sum(reasons.values()), "reasons": dict(reasons),
                         "interval_start": bucket * settings.REFUSAL_AUDIT_INTERVAL,
                         "interval_seconds": settings.REFUSAL_AUDIT_INTERVAL})
            written += 1
    return written

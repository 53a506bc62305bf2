"""Counters and histograms kept in Redis, so that what one process sees (a Celery worker
finishing a task, a console proxy relaying bytes, a claim in a web request) is exported by
whichever web process Prometheus scrapes (``vdi.metrics`` reads them back).

Why Redis and not prometheus_client's multiprocess mode: the workers run on other machines
(one per hypervisor host) and the web processes in other containers; a folder of mmap files
shared by all of them does not exist. Redis is already shared by every process, and a
``HINCRBYFLOAT`` per observation is cheap. Redis restarts reset the numbers, which Prometheus
reads as a counter reset (``rate()`` copes with that).

Recording never fails the caller: a Redis error is logged and the observation lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import redis
from django.conf import settings

log = logging.getLogger(__name__)

# Seconds: tasks take milliseconds (a beat job) to many minutes (an image build); a claim is
# ready at once (warm pool) or after a boot (seconds to minutes under TCG).
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
CLAIM_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
HISTOGRAMS: dict[str, Sequence[float]] = {
    "celery_task_duration_seconds": TASK_BUCKETS,
    "claim_ready_seconds": CLAIM_BUCKETS,
}
SEP = "\x1f"  # between a series' labels and its bucket in a hash field

_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2,
                                       socket_connect_timeout=2)
    return _client


def _key(kind: str, name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:metrics:{kind}:{name}"


def _series(labels: Mapping[str, str]) -> str:
    return json.dumps(sorted(labels.items()), separators=(",", ":"))


def inc(name: str, labels: Mapping[str, str], amount: float = 1) -> None:
    """Add ``amount`` to the counter ``name`` of the series ``labels``."""
    try:
        client().hincrbyfloat(_key("c", name), _series(labels), amount)
    except redis.RedisError as exc:
        log.warning("metric %s not recorded: %s", name, exc)


def observe(name: str, labels: Mapping[str, str], value: float) -> None:
    """One observation of the histogram ``name`` (buckets from ``HISTOGRAMS``)."""
    series = _series(labels)
    key = _key("h", name)
    try:
        pipe = client().pipeline(transaction=True)
        for bound in HISTOGRAMS[name]:
            if value <= bound:
                pipe.hincrbyfloat(key, f"{series}{SEP}{bound}", 1)
        pipe.hincrbyfloat(key, f"{series}{SEP}+Inf", 1)
        pipe.hincrbyfloat(key, f"{series}{SEP}sum", value)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("metric %s not recorded: %s", name, exc)


@dataclass
class Histogram:
    """One series of a histogram: cumulative bucket counts, count and sum."""

    buckets: dict[str, float] = field(default_factory=dict)
    sum: float = 0.0

    @property
    def count(self) -> float:
        return self.buckets.get("+Inf", 0.0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _labels(series: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in json.loads(series))


def counters(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every series of the counter ``name``: labels -> value."""
    raw = client().hgetall(_key("c", name))
    return {_labels(_text(k)): float(v) for k, v in raw.items()}


def histograms(name: str) -> dict[tuple[tuple[str, str], ...], Histogram]:
    """Every series of the histogram ``name``: labels -> buckets, count and sum."""
    found: dict[tuple[tuple[str, str], ...], Histogram] = {}
    for raw_field, raw_value in client().hgetall(_key("h", name)).items():
        series, _, bucket = _text(raw_field).rpartition(SEP)
        histogram = found.setdefault(_labels(series), Histogram())
        if bucket == "sum":
            histogram.sum = float(raw_value)
        else:
            histogram.buckets[bucket] = float(raw_value)
    return found


# --- what the portal records ----------------------------------------------------------------
def claim_started_key(desktop_id: int) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:claim-started:{desktop_id}"


def claim_started(desktop_id: int, pool: str, at: float) -> None:
    """A claim of ``desktop_id`` began at ``at`` (epoch seconds): ``claim_ready`` measures to
    the moment its guest is ready. Kept for the guest's ready timeout and a margin."""
    ttl = int(settings.GUEST_READY_TIMEOUT) + 3600
    try:
        client().set(claim_started_key(desktop_id), json.dumps([pool, at]), ex=ttl)
    except redis.RedisError as exc:
        log.warning("claim start of desktop %s not recorded: %s", desktop_id, exc)


def claim_ready(desktop_id: int, at: float) -> float | None:
    """The guest of ``desktop_id`` is ready: observe the seconds since its claim began, once
    per claim (the key is taken). None when no claim was waiting for it."""
    try:
        raw = client().getdel(claim_started_key(desktop_id))
    except redis.RedisError as exc:
        log.warning("claim readiness of desktop %s not recorded: %s", desktop_id, exc)
        return None
    if raw is None:
        return None
    pool, started = json.loads(raw)
    seconds = max(0.0, at - float(started))
    observe("claim_ready_seconds", {"pool": pool}, seconds)
    return seconds


def console_bytes(to_browser: int, to_guest: int) -> None:
    """Bytes a console relayed, each way."""
    if to_browser:
        inc("console_bytes_total", {"direction": "to_browser"}, to_browser)
    if to_guest:
        inc("console_bytes_total", {"direction": "to_guest"}, to_guest)

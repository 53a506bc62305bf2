"""Liveness and readiness (django-health-check).

- ``/health/live``: the process answers; it asks nothing else (no database, no Redis), so a
  dependency's outage never gets a healthy web process restarted.
- ``/health/ready``: the database, Redis (Celery's broker and the channel layer), the cache,
  and each enabled host as its worker's heartbeat says (``vdi.worker.heartbeat``): a host
  whose last beat is older than ``VDI_HEARTBEAT_STALE`` s, or whose worker found its libvirt
  not answering, is down. Any check down: 503.

Both answer JSON (``Accept: application/json`` or ``?format=json``: ``{check: "OK" or the
problem}``), text or HTML. The web tier never asks libvirt: a host's state is what its
worker wrote.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView
from redis.asyncio import Redis as RedisClient

from vdi.models import Host


def redis_client() -> RedisClient:
    return RedisClient.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@dataclasses.dataclass
class HostHeartbeat(HealthCheck):  # type: ignore[misc]
    """One enabled host: its worker's last heartbeat is recent and found libvirt answering."""

    host: str
    beat_at: datetime.datetime | None = dataclasses.field(default=None, repr=False)
    problem: str = dataclasses.field(default="", repr=False)

    async def run(self) -> None:
        if self.beat_at is None:
            raise ServiceUnavailable(f"host {self.host}: no heartbeat from its worker yet")
        age = (timezone.now() - self.beat_at).total_seconds()
        if age > settings.HEARTBEAT_STALE:
            raise ServiceUnavailable(
                f"host {self.host}: last heartbeat {int(age)} s ago "
                f"(more than {settings.HEARTBEAT_STALE} s: is its worker running?)")
        if self.problem:
            raise ServiceUnavailable(f"host {self.host}: {self.problem}")


def _enabled_hosts() -> list[tuple[str, datetime.datetime | None, str]]:
    return list(Host.objects.filter(enabled=True).values_list("name", "heartbeat_at",
                                                              "heartbeat_error"))


class LiveView(HealthCheckView):  # type: ignore[misc]
    checks = ()


class ReadyView(HealthCheckView):  # type: ignore[misc]
    checks = (
        Database,
        (Redis, {"client_factory": redis_client}),
        Cache,
    )

    async def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.hosts: list[tuple[str, datetime.datetime | None, str]] = await sync_to_async(
            _enabled_hosts)()
        response: HttpResponse = await super().get(request, *args, **kwargs)
        if response.status_code == 500 and any(r.error for r in self.results):
            response.status_code = 503  # down, not broken: a balancer's usual word for it
        return response

    def get_checks(self) -> Iterator[HealthCheck]:
        yield from super().get_checks()
        for name, beat_at, problem in self.hosts:
            yield HostHeartbeat(host=name, beat_at=beat_at, problem=problem)

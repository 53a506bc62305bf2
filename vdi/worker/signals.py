"""Celery's task signals in the worker: each task's log lines carry its id and name (and the
request id of the web request that sent it, when there was one), and its duration and outcome
go to the metrics (``vdi.telemetry``, read by the web processes' ``/metrics``).
Connected by importing this module (``vdi.tasks`` does)."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

from celery import signals

from vdi import request_log, telemetry

log = logging.getLogger(__name__)
_started: dict[str, tuple[float, contextvars.Token[dict[str, Any] | None]]] = {}
REQUEST_ID_HEADER = "vdi_request_id"


def _request_id(task: Any) -> str | None:
    request = getattr(task, "request", None)
    value = getattr(request, REQUEST_ID_HEADER, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(REQUEST_ID_HEADER)
    return str(value) if value else None


@signals.task_prerun.connect
def task_started(task_id: str, task: Any, **kwargs: Any) -> None:
    fields: dict[str, Any] = {"task_id": task_id, "task_name": task.name}
    if rid := _request_id(task):
        fields["request_id"] = rid
    _started[task_id] = (time.monotonic(), request_log.bind(**fields))


@signals.task_postrun.connect
def task_finished(task_id: str, task: Any, state: str | None = None, **kwargs: Any) -> None:
    started = _started.pop(task_id, None)
    if started is None:
        return
    began, token = started
    labels = {"task": task.name}
    telemetry.observe("celery_task_duration_seconds", labels, time.monotonic() - began)
    telemetry.inc("celery_tasks_total", {**labels, "state": (state or "UNKNOWN").lower()})
    request_log.unbind(token)


@signals.celeryd_after_setup.connect
def settle_hosts_before_work(sender: str, instance: Any, **kwargs: Any) -> None:
    """Before the worker takes its first task (and before it forks), its hosts' domain type
    is settled: a desktop's job never waits on, or fails because of, the KVM probe."""
    from vdi.worker.hosts import settle_hosts

    queues = list(instance.app.amqp.queues.consume_from or ())
    names = [name.removeprefix("host.") for name in queues if name.startswith("host.")]
    try:
        for line in settle_hosts(names):
            log.info("%s", line)
    except Exception:  # never keep the worker from starting: its jobs settle it later
        log.exception("settling the domain type of hosts %s failed", names)

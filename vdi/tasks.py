"""Celery tasks: thin and idempotent. Ids in; the work is in ``vdi.worker.jobs``."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from vdi.hypervisor import HypervisorError
from vdi.worker import jobs

MAX_RETRIES = 4


def _run(task: Task[Any, Any], action: str, desktop_id: int, operation_id: int) -> str:
    may_retry = task.request.retries < MAX_RETRIES
    try:
        return jobs.execute(action, desktop_id, operation_id, may_retry=may_retry)
    except HypervisorError as exc:
        raise task.retry(exc=exc, countdown=min(2 ** task.request.retries, 30)) from exc


@shared_task(bind=True, max_retries=MAX_RETRIES)
def provision_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "provision", desktop_id, operation_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def start_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "start", desktop_id, operation_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def stop_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "stop", desktop_id, operation_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def restart_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "restart", desktop_id, operation_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def delete_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "delete", desktop_id, operation_id)


TASKS: dict[str, Task[Any, Any]] = {
    "provision": provision_desktop,
    "start": start_desktop,
    "stop": stop_desktop,
    "restart": restart_desktop,
    "delete": delete_desktop,
}


@shared_task(bind=True, max_retries=MAX_RETRIES)
def reset_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "reset", desktop_id, operation_id)


@shared_task(bind=True, max_retries=MAX_RETRIES)
def release_desktop(self: Task[Any, Any], desktop_id: int, operation_id: int) -> str:
    return _run(self, "release", desktop_id, operation_id)


TASKS["reset"] = reset_desktop
TASKS["release"] = release_desktop


@shared_task
def maintain_pools() -> dict[str, str]:
    """Beat: top every pool up to its warm count, trim surplus."""
    from vdi.models import Pool
    from vdi.services.capacity import maintain

    report = {}
    for pool in Pool.objects.all():
        steps = maintain(pool)
        if steps.create or steps.remove:
            report[pool.name] = f"+{steps.create} -{steps.remove}"
    return report


@shared_task
def enforce_policies() -> list[str]:
    """Beat: release or stop desktops past their idle or session deadline."""
    from django.utils import timezone

    from vdi.services.policies import enforce

    return enforce(timezone.now())


@shared_task
def purge_console_tickets() -> int:
    from vdi.services.console import purge_expired_tickets

    return purge_expired_tickets()


@shared_task
def reconcile_hosts() -> int:
    """Beat: ask each enabled host's worker to reconcile its host."""
    from vdi.models import Host

    hosts = list(Host.objects.filter(enabled=True))
    for host in hosts:
        reconcile_host.apply_async(args=(host.pk,), queue=host.queue)
    return len(hosts)


@shared_task
def reconcile_host(host_id: int) -> list[dict[str, str]]:
    from vdi.models import Host
    from vdi.worker.reconcile import reconcile

    run = reconcile(Host.objects.get(pk=host_id))
    return list(run.findings)

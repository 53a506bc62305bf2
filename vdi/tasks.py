"""Celery tasks: thin and idempotent, ids in. Their names come from ``vdi.task_names``; the web
tier sends them by name and never imports this module.

``desktop_action`` is the one entry point of every desktop action: the work is the action's
step in ``vdi.worker.jobs``. A retryable hypervisor error is retried with backoff while the
operation is within its host outage window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from vdi import task_names
from vdi.console import guards
from vdi.hypervisor import HypervisorError
from vdi.models import Host, Pool
from vdi.services import backups, capacity, history, policies, retries, rollouts, webhooks
from vdi.services.console import purge_expired_tickets
from vdi.worker import backups as worker_backups
from vdi.worker import (
    guests,
    heartbeat,
    image_jobs,
    jobs,
    session,
    sound,
    thumbnails,
    transfers,
)
from vdi.worker import signals as _signals  # noqa: F401  (task logs and metrics)
from vdi.worker import webhooks as worker_webhooks
from vdi.worker.files import remove_version_files
from vdi.worker.reconcile import reconcile


def backoff(retries: int) -> int:
    """Seconds before the next try: 1, 2, 4... up to VDI_HOST_RETRY_MAX_SECONDS."""
    return int(min(2 ** retries, settings.HOST_RETRY_MAX_SECONDS))


@shared_task(bind=True, name=task_names.DESKTOP_ACTION, max_retries=None)
def desktop_action(self: Task[Any, Any], action: str, desktop_id: int, operation_id: int) -> str:
    try:
        return jobs.execute(action, desktop_id, operation_id)
    except HypervisorError as exc:  # only re-raised by execute while it may wait
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc


@shared_task(bind=True, name=task_names.WATCH_GUEST, max_retries=None)
def watch_guest(self: Task[Any, Any], desktop_id: int) -> str:
    """Until the desktop's guest is ready: look, and ask again a moment later."""
    outcome = guests.check(desktop_id)
    if outcome == "waiting":
        raise self.retry(countdown=settings.GUEST_READY_POLL)
    return outcome


@shared_task(name=task_names.APPLY_KEYBOARD_LAYOUT)
def apply_keyboard_layout(desktop_id: int, layout: str) -> str:
    """Set the user's keyboard layout in the desktop's session."""
    return session.apply_keyboard_layout(desktop_id, layout)


@shared_task(name=task_names.PLAY_TEST_TONE)
def play_test_tone(desktop_id: int) -> str:
    """The SPICE console's "Test sound": the desktop plays a short tone."""
    return sound.play_test_tone(desktop_id)


@shared_task(name=task_names.PUSH_FILE)
def push_file(transfer_id: int) -> str:
    """An uploaded file into the desktop's Downloads folder."""
    return transfers.push_file(transfer_id)


@shared_task(name=task_names.PULL_FILE)
def pull_file(transfer_id: int) -> str:
    """A file of the desktop's Shared folder into the spool, for its user to download."""
    return transfers.pull_file(transfer_id)


@shared_task(name=task_names.LIST_SHARED)
def list_shared(desktop_id: int) -> str:
    """Look at the desktop's Shared folder again."""
    return transfers.list_shared(desktop_id)


@shared_task(name=task_names.BUILD_IMAGE)
def build_image(name: str, operation_id: int) -> str:
    """Build an image from its recipe (or register the cached build)."""
    return image_jobs.build(name, operation_id)


@shared_task(name=task_names.MAINTAIN_POOLS)
def maintain_pools() -> dict[str, str]:
    """Beat: top every pool up to its warm count, trim surplus."""
    report = {}
    now = timezone.now()
    for pool in Pool.objects.all():
        steps = capacity.maintain(pool)
        retried = retries.retry_failed_provisions(pool.pk, now)
        if steps.create or steps.remove or retried:
            report[pool.name] = f"+{steps.create} -{steps.remove} retried {len(retried)}"
    return report


@shared_task(name=task_names.ENFORCE_POLICIES)
def enforce_policies() -> list[str]:
    """Beat: release or stop desktops past their idle or session deadline."""
    return policies.enforce(timezone.now())


@shared_task(name=task_names.SCHEDULE_BACKUPS)
def schedule_backups() -> list[str]:
    """Beat: the persistent desktops whose pool's backup interval has passed are backed up."""
    return backups.schedule(timezone.now())


@shared_task(name=task_names.ADVANCE_ROLLOUTS)
def advance_rollouts() -> list[str]:
    """Beat: each image rollout under way takes its next step."""
    return rollouts.advance_all()


@shared_task(name=task_names.RESTORE_FILE)
def restore_file(transfer_id: int, backup_id: int, path: str) -> str:
    """One file of a backup's data disk into the spool, for its user to download."""
    return worker_backups.restore_file(transfer_id, backup_id, path)


@shared_task(name=task_names.PURGE_CONSOLE_TICKETS)
def purge_console_tickets() -> int:
    return purge_expired_tickets()


@shared_task(name=task_names.FLUSH_CONSOLE_REFUSALS)
def flush_console_refusals() -> int:
    """Beat: one audit row per source address for the refused console connects it counted."""
    return guards.flush_refusals()


@shared_task(name=task_names.PURGE_HISTORY)
def purge_history() -> dict[str, int]:
    """Beat: forget deleted desktops, finished operations and quiet reconciler runs past the
    retention period."""
    return history.purge(timezone.now())


@shared_task(name=task_names.PURGE_RETIRED_VERSIONS)
def purge_retired_versions() -> list[str]:
    """Beat: retired image versions that no desktop uses go, files and all."""
    return history.purge_retired_versions()


@shared_task(name=task_names.REMOVE_VERSION_FILES)
def remove_files(paths: list[str]) -> list[str]:
    return [str(p) for p in remove_version_files([Path(p) for p in paths])]


@shared_task(name=task_names.RECONCILE_HOSTS)
def reconcile_hosts() -> int:
    """Beat: ask each enabled host's worker to reconcile its host."""
    hosts = list(Host.objects.filter(enabled=True))
    for host in hosts:
        reconcile_host.apply_async(args=(host.pk,), queue=host.queue)
    return len(hosts)


@shared_task(name=task_names.RECONCILE_HOST)
def reconcile_host(host_id: int) -> list[dict[str, str]]:
    run = reconcile(Host.objects.get(pk=host_id))
    return list(run.findings)


@shared_task(name=task_names.HEARTBEAT_HOSTS)
def heartbeat_hosts() -> int:
    """Beat: a heartbeat to each enabled host's queue; its worker writes it on the host."""
    hosts = list(Host.objects.filter(enabled=True))
    for host in hosts:
        host_heartbeat.apply_async(args=(host.pk,), queue=host.queue)
    return len(hosts)


@shared_task(name=task_names.HOST_HEARTBEAT)
def host_heartbeat(host_id: int) -> str:
    return heartbeat.beat(host_id)


@shared_task(bind=True, name=task_names.DELIVER_WEBHOOK, max_retries=None)
def deliver_webhook(self: Task[Any, Any], delivery_id: int, attempts: int) -> str:
    """One attempt; a failed one is retried by Celery after the backoff, as the next attempt
    (the delivery row counts them and stops at VDI_WEBHOOK_MAX_ATTEMPTS)."""
    outcome = worker_webhooks.attempt(delivery_id, attempts)
    if outcome.result == "retry":
        raise self.retry(args=(delivery_id, attempts + 1), countdown=outcome.retry_in)
    return outcome.result


@shared_task(name=task_names.SWEEP_WEBHOOKS)
def sweep_webhooks() -> int:
    """Beat: deliveries whose message was lost, or whose worker died, are sent again."""
    return len(webhooks.sweep(timezone.now()))


@shared_task(name=task_names.TAKE_THUMBNAILS)
def take_thumbnails() -> int:
    """Beat: each enabled host's worker takes thumbnails of its running desktops' screens."""
    hosts = list(Host.objects.filter(enabled=True))
    for host in hosts:
        host_thumbnails.apply_async(args=(host.pk,), queue=host.queue)
    return len(hosts)


@shared_task(name=task_names.HOST_THUMBNAILS)
def host_thumbnails(host_id: int) -> dict[str, int]:
    return thumbnails.take(host_id)

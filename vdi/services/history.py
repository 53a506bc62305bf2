"""History that does not pin everything forever.

Deleted desktops (``DeletedDesktop``), finished operations, claims' timings and reconciler
runs are forgotten after ``VDI_HISTORY_DAYS`` (quiet reconciler runs after a day); the audit
log is kept. Console recordings go after ``VDI_RECORDING_DAYS``; spooled files of finished
transfers after a day. Retired image versions that no desktop uses are deleted, rows and
files.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from vdi.choices import ImageStatus, OperationStatus
from vdi.models import ClaimTiming, DeletedDesktop, ImageVersion, Operation, ReconcileRun
from vdi.services import recordings, records, transfers

QUIET_RUNS_KEPT = timedelta(days=1)


def purge(now: datetime) -> dict[str, int]:
    cutoff = now - timedelta(days=settings.HISTORY_DAYS)
    done = {
        "deleted_desktops": DeletedDesktop.objects.filter(deleted_at__lt=cutoff).delete()[0],
        "operations": Operation.objects.filter(
            finished_at__lt=cutoff,
            status__in=[OperationStatus.SUCCEEDED, OperationStatus.FAILED]).delete()[0],
        "reconcile_runs": ReconcileRun.objects.filter(started_at__lt=cutoff).delete()[0],
        "claim_timings": ClaimTiming.objects.filter(ready_at__lt=cutoff).delete()[0],
    }
    done["reconcile_runs"] += ReconcileRun.objects.filter(
        started_at__lt=now - QUIET_RUNS_KEPT, findings=[], error="").delete()[0]
    done["recordings"] = recordings.purge(now)
    done["file_transfers"] = transfers.purge(now)
    return done


def purge_retired_versions() -> list[str]:
    """Delete retired versions that no desktop uses; their files go through a worker."""
    unused = ImageVersion.objects.filter(status=ImageStatus.RETIRED, desktops__isnull=True)
    versions = list(unused.select_related("image"))
    records.delete(None, versions)
    return [str(v) for v in versions]

"""Recording an Operation's progress from the worker."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from vdi.choices import OperationStatus
from vdi.models import Operation


def begin(operation_id: int) -> None:
    Operation.objects.filter(pk=operation_id).update(
        status=OperationStatus.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1,
        error="",
    )


def progress(operation_id: int, percent: int, step: str) -> None:
    Operation.objects.filter(pk=operation_id).update(progress=percent, step=step[:200])


def finish(operation_id: int, error: str = "", step: str = "") -> None:
    status = OperationStatus.FAILED if error else OperationStatus.SUCCEEDED
    fields = {"status": status, "finished_at": timezone.now(), "error": error}
    if not error:
        fields["progress"] = 100
    if step:
        fields["step"] = step[:200]
    Operation.objects.filter(pk=operation_id).update(**fields)

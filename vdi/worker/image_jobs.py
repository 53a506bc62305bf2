"""Image work in a worker, recorded on its Operation: progress as it goes, the reason when it
fails (in words: the build's own explanation)."""

from __future__ import annotations

import logging

from vdi.images import builds
from vdi.models import Pool
from vdi.services import capacity
from vdi.services.errors import ServiceError
from vdi.worker import operations

log = logging.getLogger(__name__)


def build(name: str, operation_id: int) -> str:
    if not operations.claim(operation_id):
        return "skipped"
    try:
        version = builds.build(name, lambda p, s: operations.progress(operation_id, p, s))
    except ServiceError as exc:
        operations.finish(operation_id, error=str(exc))
        return "failed"
    except Exception as exc:
        log.exception("build of %s crashed", name)
        operations.finish(operation_id, error="the build failed because of an internal error",
                          detail=repr(exc))
        return "failed"
    operations.finish(operation_id, step=f"built {version}")
    for pool in Pool.objects.filter(image=version.image, min_ready__gt=0):
        capacity.maintain(pool)  # its warm desktops boot now, not at beat's next round
    return "done"

"""Asking for image work (builds now; imports and publishing from desktops follow the same
path): an Operation the pages can show, sent to a worker by name."""

from __future__ import annotations

from django.db import transaction

from vdi import task_names
from vdi.choices import ImageOperation, OperationStatus
from vdi.models import GoldenImage, Operation
from vdi.services import audit, dispatch
from vdi.services.access import Account, User
from vdi.services.errors import ServiceError

IMAGES_QUEUE = "vdi"  # any worker: the image folder is shared by the hosts


def in_progress(image: GoldenImage) -> Operation | None:
    """The image's build or import that is queued or running, if any."""
    return image.operations.filter(status__in=OperationStatus.in_progress()).order_by(
        "-created_at").first()


def request_build(actor: User | None, name: str, source_address: str | None = None) -> Operation:
    """Build (or take from the cache) the image ``name`` from its recipe, in a worker."""
    with transaction.atomic():
        image, _ = GoldenImage.objects.get_or_create(name=name)
        GoldenImage.objects.select_for_update().filter(pk=image.pk).first()
        if in_progress(image) is not None:
            raise ServiceError(f"The image {name} is already being built.")
        operation = Operation.objects.create(
            kind=ImageOperation.BUILD, image=image, target=f"image {name}",
            requested_by=actor if isinstance(actor, Account) else None)
        audit.record(actor, "image.build", image, source_address)
        transaction.on_commit(lambda: dispatch.send(
            task_names.BUILD_IMAGE, (name, operation.pk), IMAGES_QUEUE))
    return operation

"""Automatic pools take their desktops back when the user signs out."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from vdi.models import Desktop
from vdi.services.claims import release_desktop
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

log = logging.getLogger(__name__)


@receiver(user_logged_out)
def release_automatic_desktops(sender: Any, request: HttpRequest | None, user: Any,
                               **kwargs: Any) -> None:
    if user is None:
        return
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    desktops = Desktop.objects.live().filter(owner=user, pool__assignment="automatic")
    for desktop in desktops.select_related("pool", "host"):
        try:
            release_desktop(user, desktop, address, reason="sign-out")
        except (ServiceError, TransitionRefused) as exc:
            log.info("sign-out release of %s skipped: %s", desktop, exc)

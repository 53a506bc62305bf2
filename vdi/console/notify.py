"""Telling open console sessions that they must end (from the worker or a sign-out)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def _tell(group: str, event: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": event})
    except Exception as exc:  # the VNC socket closes with the guest anyway
        log.warning("could not tell %s that %s: %s", group, event, exc)


def close_consoles(desktop_id: int) -> None:
    """Every console session of the desktop closes with 'desktop stopped'."""
    from vdi.console.consumer import desktop_group

    _tell(desktop_group(desktop_id), "desktop.stopped")


def close_user_consoles(user_id: int) -> None:
    """Every console session of the user closes (they signed out)."""
    from vdi.console.consumer import user_group

    _tell(user_group(user_id), "user.signed_out")

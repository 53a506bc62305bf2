"""Telling open console sessions of a desktop that it is going away (from the worker)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def close_user_consoles(user_id: int) -> None:
    """Every console session of the user closes (they signed out)."""
    from vdi.console.consumer import user_group

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "user.signed_out"})
    except Exception as exc:
        log.warning("could not close the console sessions of user %s: %s", user_id, exc)


def close_consoles(desktop_id: int) -> None:
    """Every console session of the desktop closes with 'desktop stopped'."""
    from vdi.console.consumer import desktop_group

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(desktop_group(desktop_id), {"type": "desktop.stopped"})
    except Exception as exc:  # the VNC socket closes with the guest anyway
        log.warning("could not notify console sessions of desktop %s: %s", desktop_id, exc)

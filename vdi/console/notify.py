"""Telling open console sessions that they must end (from a service, the worker or a
sign-out). The consumer joins the groups named here."""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def desktop_group(desktop_id: int) -> str:
    return f"desktop-{desktop_id}"


def user_group(user_id: int) -> str:
    return f"console-user-{user_id}"


def _send(group: str, event: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": event})
    except Exception as exc:  # the VNC socket closes with the guest anyway
        log.warning("could not tell %s that %s: %s", group, event, exc)


def _tell(group: str, event: str) -> None:
    """Send from synchronous code; from a thread that runs an event loop (a caller driving a
    browser, say), send from a helper thread, as async_to_sync can't run there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _send(group, event)
        return
    helper = threading.Thread(target=_send, args=(group, event), daemon=True)
    helper.start()
    helper.join(10)


def close_consoles(desktop_id: int) -> None:
    """Every console session of the desktop closes with 'desktop stopped'."""
    _tell(desktop_group(desktop_id), "desktop.stopped")


def close_user_consoles(user_id: int) -> None:
    """Every console session of the user closes (they signed out)."""
    _tell(user_group(user_id), "user.signed_out")

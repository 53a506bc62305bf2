"""Notices to open consoles, sent over the channel layer from services, the worker and
sign-in events. Only these notice types are ever acted on by a console: a message on the
layer can end a console or make it check its access again, never carry input for the guest.
The consumer joins the groups named here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from vdi.console.codes import CloseCode

log = logging.getLogger(__name__)
END = "vdi.end"  # {"code": int, "reason": str}: close now
RECHECK = "vdi.recheck"  # check access again now (a grant, role, session or password changed)
WATCH = "vdi.watch"  # {"watcher": name, "joined": bool}: someone started or stopped watching
CONSENT_REQUEST = "vdi.consent_request"  # {"watcher", "reply_to"}: ask the user's consoles
CONSENT = "vdi.consent"  # {"allow": bool, "by": name}: the user's answer, to the watcher
END_WATCHING = "vdi.end_watching"  # the user ended the watching: watchers close
KEYBOARD = "vdi.keyboard"  # {"label": str}: the user chose another keyboard layout
NOTICES = frozenset({END, RECHECK, WATCH, CONSENT_REQUEST, CONSENT, END_WATCHING, KEYBOARD})


def desktop_group(desktop_id: int) -> str:
    return f"desktop-{desktop_id}"


def user_group(user_id: int) -> str:
    return f"console-user-{user_id}"


def _send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception as exc:  # the periodic access check closes the console anyway
        log.warning("could not send %s to %s: %s", message["type"], group, exc)


async def _send_async(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group, message)
    except Exception as exc:  # the periodic access check closes the console anyway
        log.warning("could not send %s to %s: %s", message["type"], group, exc)


_on_their_way: set[asyncio.Task[None]] = set()  # sends handed to a loop, until they are done
_server_loop: asyncio.AbstractEventLoop | None = None  # the ASGI server's, for the process


def serve_from(loop: asyncio.AbstractEventLoop) -> None:
    """The loop the ASGI server (daphne) runs the portal on, for as long as the process lives:
    notices from the threads serving it are handed to it (``tell``). Only loops known to
    live on take them: a send left on a test's short-lived loop would die with it."""
    global _server_loop
    _server_loop = loop


def _hand_over(group: str, message: dict[str, Any]) -> None:
    task = asyncio.ensure_future(_send_async(group, message))
    _on_their_way.add(task)
    task.add_done_callback(_on_their_way.discard)


class ServerLoopMiddleware:
    """Outermost ASGI layer of the server's application: notes the loop it runs on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        if loop is not _server_loop:
            serve_from(loop)
        await self.app(scope, receive, send)


def tell(group: str, message: dict[str, Any]) -> None:
    """Send from synchronous code.

    - On one of asgiref's threads serving the server's event loop (a consumer's or a view's
      database call under daphne): the loop sends it, and this thread does not wait. Waiting
      held the thread that every consumer's database calls share, so one console closing
      (three notices) delayed the next console's opening by up to 200 ms.
    - Beside a running loop of its own (a test driving a browser): from a helper thread with
      a loop of its own, waited for (async_to_sync would hand the send to that loop).
    - Elsewhere (the worker, commands): sent here.
    """
    serving = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if serving is not None and serving is _server_loop and not _has_running_loop():
        serving.call_soon_threadsafe(_hand_over, group, message)
        return
    if not _near_an_event_loop():
        _send(group, message)
        return
    helper = threading.Thread(target=_send, args=(group, message), daemon=True)
    helper.start()
    helper.join(10)


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _near_an_event_loop() -> bool:
    """This thread runs an event loop, or is one of asgiref's threads serving one."""
    return _has_running_loop() or getattr(
        SyncToAsync.threadlocal, "main_event_loop", None) is not None


def _end(code: CloseCode, reason: str) -> dict[str, Any]:
    return {"type": END, "code": int(code), "reason": reason}


def close_consoles(desktop_id: int, code: CloseCode = CloseCode.DESKTOP_STOPPED,
                   reason: str = "the desktop stopped") -> None:
    """Every console of the desktop closes."""
    tell(desktop_group(desktop_id), _end(code, reason))


def close_user_consoles(user_id: int, code: CloseCode, reason: str) -> None:
    """Every console of the user closes."""
    tell(user_group(user_id), _end(code, reason))


def recheck_user_consoles(user_id: int) -> None:
    tell(user_group(user_id), {"type": RECHECK})


def recheck_desktop_consoles(desktop_id: int) -> None:
    tell(desktop_group(desktop_id), {"type": RECHECK})


def keyboard_changed(user_id: int, label: str) -> None:
    """The user's open consoles show the keyboard layout they chose now."""
    tell(user_group(user_id), {"type": KEYBOARD, "label": label})

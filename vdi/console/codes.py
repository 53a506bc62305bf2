"""Websocket close codes the console uses, and what the page tells the user for each."""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    NORMAL = 1000
    NOT_SIGNED_IN = 4401
    NO_TICKET = 4400
    TICKET_REFUSED = 4403
    NOT_RUNNING = 4409
    DESKTOP_STOPPED = 4410
    SESSION_LIMIT = 4408
    VNC_UNREACHABLE = 4502


EXPLANATIONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "The desktop closed the connection.",
    CloseCode.NOT_SIGNED_IN: "You are not signed in (or your session ended).",
    CloseCode.NO_TICKET: "The browser did not present a console ticket.",
    CloseCode.TICKET_REFUSED: "The console ticket was refused (used, expired, or not yours).",
    CloseCode.NOT_RUNNING: "The desktop is not running.",
    CloseCode.DESKTOP_STOPPED: "The desktop was stopped or deleted.",
    CloseCode.SESSION_LIMIT: "The maximum console session length was reached.",
    CloseCode.VNC_UNREACHABLE: "The desktop's display (VNC) could not be reached.",
}

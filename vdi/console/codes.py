"""Websocket close codes the console uses, and what the page tells the user for each."""

from __future__ import annotations

import enum


class CloseCode(enum.IntEnum):
    """1000, or from the private range: autobahn (daphne) refuses to send any other code, such
    as the standard 1002 or 1009, and the console then never closed."""

    NORMAL = 1000
    PROTOCOL_ERROR = 4002
    MESSAGE_TOO_BIG = 4009
    NOT_SIGNED_IN = 4401
    NO_TICKET = 4400
    TICKET_REFUSED = 4403
    SESSION_LIMIT = 4408
    NOT_RUNNING = 4409
    DESKTOP_STOPPED = 4410
    ACCOUNT_CLOSED = 4412
    CREDENTIALS_CHANGED = 4413
    SESSION_ENDED = 4414
    ACCESS_REVOKED = 4415
    HANDED_OVER = 4416
    RATE_LIMITED = 4429
    TOO_MANY_CONSOLES = 4430
    DESKTOP_BUSY = 4431
    HANDSHAKE_TIMEOUT = 4432
    WATCH_REFUSED = 4433
    WATCH_ENDED = 4434
    VNC_UNREACHABLE = 4502


EXPLANATIONS: dict[CloseCode, str] = {
    CloseCode.NORMAL: "The desktop closed the connection.",
    CloseCode.PROTOCOL_ERROR: "The browser sent something the console does not understand.",
    CloseCode.MESSAGE_TOO_BIG: "The browser sent a message larger than the console accepts.",
    CloseCode.NOT_SIGNED_IN: "You are not signed in (or your session ended).",
    CloseCode.NO_TICKET: "The browser did not present a console ticket.",
    CloseCode.TICKET_REFUSED: "The console ticket was refused (used, expired, or not yours).",
    CloseCode.SESSION_LIMIT: "The maximum console session length was reached.",
    CloseCode.NOT_RUNNING: "The desktop is not running.",
    CloseCode.DESKTOP_STOPPED: "The desktop was stopped or deleted.",
    CloseCode.ACCOUNT_CLOSED: "Your account was disabled or deleted.",
    CloseCode.CREDENTIALS_CHANGED: "Your password changed: sign in again.",
    CloseCode.SESSION_ENDED: "This browser session ended (signed out, here or elsewhere).",
    CloseCode.ACCESS_REVOKED: "You no longer have access to this desktop (a grant or role "
                              "was taken away).",
    CloseCode.HANDED_OVER: "The desktop was given to someone else.",
    CloseCode.RATE_LIMITED: "Too many console connections in a short time: wait a minute.",
    CloseCode.TOO_MANY_CONSOLES: "You have as many consoles open as you may: close one first.",
    CloseCode.DESKTOP_BUSY: "This desktop has as many consoles open as it may.",
    CloseCode.HANDSHAKE_TIMEOUT: "The browser did not finish the console handshake in time.",
    CloseCode.WATCH_REFUSED: "The user did not allow watching their desktop (refused, did not "
                             "answer in time, or has no console open to ask).",
    CloseCode.WATCH_ENDED: "The user ended the watching.",
    CloseCode.VNC_UNREACHABLE: "The desktop's display (VNC) could not be reached.",
}

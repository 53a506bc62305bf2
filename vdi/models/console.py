from __future__ import annotations

from django.conf import settings
from django.db import models

from vdi.models.desktops import Desktop


class ConsoleTicket(models.Model):
    """A single-use, short-lived right to open one desktop's console in one browser session.

    Only hashes are stored: the ticket itself lives in the browser for a few seconds.
    """

    token_hash = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_hash = models.CharField(max_length=64)
    desktop = models.ForeignKey(Desktop, on_delete=models.CASCADE, related_name="console_tickets")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    view_only = models.BooleanField(default=False, help_text="Watching: input is dropped.")
    native = models.BooleanField(
        default=False, help_text="For a native SPICE client (.vv file): bound to the address "
        "its first channel came from, not to a browser session.")
    joins_until = models.DateTimeField(
        null=True, blank=True, help_text="SPICE: until when the session's other channels may "
        "join (set when its main channel opens).")
    ended_at = models.DateTimeField(null=True, blank=True,
                                    help_text="SPICE: when the session's main channel closed.")
    client_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"console ticket {self.pk} for {self.desktop_id}"


class ConsoleSession(models.Model):
    """One open console; the proxy touches ``last_seen_at`` while it relays, so a session
    whose proxy died stops counting as connected after a while."""

    desktop = models.ForeignKey(Desktop, on_delete=models.CASCADE, related_name="console_sessions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="+")
    opened_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    view_only = models.BooleanField(default=False, help_text="Someone watching, not the user.")
    client_address = models.GenericIPAddressField(null=True, blank=True)
    bytes_to_browser = models.BigIntegerField(
        default=0, help_text="Bytes the proxy relayed from the desktop so far (written at each "
        "heartbeat and at the close).")
    bytes_to_guest = models.BigIntegerField(
        default=0, help_text="Bytes the proxy relayed from the browser so far.")

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"console of {self.desktop_id} opened {self.opened_at:%Y-%m-%d %H:%M}"

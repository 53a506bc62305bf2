"""Signal receivers, connected when the app is ready: sign-in events, account changes and
their effect on desktops and consoles, the audit trail of accounts, and webhooks."""

from vdi.receivers import accounts, audit_trail, sign_in, webhooks

__all__ = ["accounts", "audit_trail", "sign_in", "webhooks"]

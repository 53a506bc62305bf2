"""Signal receivers, connected when the app is ready: sign-in events, account changes and
their effect on desktops and consoles, and the audit trail of accounts."""

from vdi.receivers import accounts, audit_trail, sign_in

__all__ = ["accounts", "audit_trail", "sign_in"]

"""Signal receivers, connected when the app is ready: sign-in events, account changes."""

from vdi.receivers import accounts, sign_in

__all__ = ["accounts", "sign_in"]

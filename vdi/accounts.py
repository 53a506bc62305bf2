"""How django-allauth behaves here: accounts are made by administrators, not by sign-up; a
sign-in refused by the rate limit is audited."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from vdi.services import audit


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            audit.record(None, "auth.login_throttled", None,
                         request.META.get("REMOTE_ADDR") or None,
                         username=str(credentials.get("username", ""))[:150])
            raise

"""Administrators, and everyone holding a role beyond *user* (helpdesk, pool operators),
must set up two-factor sign-in before doing anything else (when ``VDI_ADMIN_REQUIRE_2FA``
is on)."""

from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from vdi.roles import is_privileged

ALWAYS_OPEN = ("/accounts/", "/static/")


class AdminTwoFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            settings.ADMIN_REQUIRE_2FA
            and user.is_authenticated
            and is_privileged(user)
            and not request.path.startswith(ALWAYS_OPEN)
            and not is_mfa_enabled(user)
        ):
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return self.get_response(request)

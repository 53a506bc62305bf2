"""What a token may do: reading needs its ``read`` scope, anything else its ``write`` scope.
A session (the portal's own pages) may do what its user may."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from vdi.models import ApiToken


class TokenScope(permissions.BasePermission):
    message = "This token's scopes do not allow it."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        needed = ApiToken.READ if request.method in permissions.SAFE_METHODS else ApiToken.WRITE
        return token.allows(needed)


class HoldsPermission(permissions.BasePermission):
    """The view's ``required_permission`` (a Django permission, held everywhere)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = getattr(view, "required_permission", None)
        return needed is None or bool(request.user.has_perm(needed))

"""What the role matrices share (tests/unit/test_permissions*.py): the personas, a client
signed in as one, and what a response amounts to. The personas themselves are fixtures in
``tests/conftest.py``."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpResponseBase
from django.test import Client

from vdi import actions
from vdi.models import Desktop

# owner: a plain user with a desktop; member: entitled to the pool through a group; helpdesk,
# operator (of the desktop's pool), other_operator (of another pool), administrator: roles;
# outsider: signed in, no grant; disabled_user: an account switched off; anonymous.
PERSONAS = ("owner", "member", "helpdesk", "operator", "other_operator", "administrator",
            "outsider", "disabled_user", "anonymous")
STAFF = ("helpdesk", "operator", "other_operator", "administrator")
OK, LOGIN, GONE, DENIED = "ok", "login", "404", "403"

SIGNED_IN = {"anonymous": LOGIN, "disabled_user": LOGIN}
EVERYONE = {p: OK for p in PERSONAS} | SIGNED_IN
ADMIN_SITE_LOGIN = {p: LOGIN for p in PERSONAS}  # non-staff are sent to the admin's sign-in


def only(*personas: str, others: str = GONE) -> dict[str, str]:
    """A portal page: these personas get it, other signed-in ones ``others``."""
    table = {p: others for p in PERSONAS} | SIGNED_IN
    return table | {p: OK for p in personas}


def admin_page(*personas: str, staff: str = DENIED) -> dict[str, str]:
    """An admin page: staff without the permission get ``staff``; non-staff sign in."""
    table = ADMIN_SITE_LOGIN | {p: staff for p in STAFF}
    return table | {p: OK for p in personas}


def client_for(request: pytest.FixtureRequest, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(request.getfixturevalue(persona))
    return client


def user_of(request: pytest.FixtureRequest, persona: str) -> Any:
    return None if persona == "anonymous" else request.getfixturevalue(persona)


def outcome(response: HttpResponseBase) -> str:
    location = response.get("Location", "") if response.status_code == 302 else ""
    if "/accounts/login/" in location or "/admin/login/" in location:
        return LOGIN
    if location == "/admin/":  # the admin's "that object does not exist (for you)"
        return GONE
    if response.status_code in (200, 202, 302):
        return OK
    return {404: GONE, 403: DENIED, 409: OK}.get(response.status_code,
                                                  str(response.status_code))


def prepare(what: str, desktop: Desktop) -> str | None:
    """For "POST <action>": put the desktop in a state the action starts from; return the
    state the action claims (None for anything that is not a desktop action)."""
    name = what.removeprefix("POST ")
    if name not in actions.ACTIONS:
        return None
    action = actions.get(name)
    Desktop.objects.filter(pk=desktop.pk).update(status=sorted(action.allowed_from)[-1])
    return action.claims

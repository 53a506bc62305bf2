"""``python -m vdi.testing.oidc_provider.seed < spec.json``: bring the test provider's
database up to date, then create or update the users and clients of the spec::

    {"users": [{"username": "ada", "password": "...", "email": "...", "first_name": "...",
                "last_name": "...", "groups": ["engineering"]}],
     "clients": [{"client_id": "portal", "secret": "...", "redirect_uris": ["http://..."]}]}
"""

from __future__ import annotations

import json
import sys
from typing import Any

import django


def seed_user(spec: dict[str, Any]) -> None:
    from django.contrib.auth.models import Group, User

    user, _ = User.objects.get_or_create(username=spec["username"])
    user.set_password(spec["password"])
    user.email = spec.get("email", "")
    user.first_name = spec.get("first_name", "")
    user.last_name = spec.get("last_name", "")
    user.save()
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in spec["groups"]])


def seed_client(spec: dict[str, Any]) -> None:
    from oauth2_provider.models import Application  # type: ignore[import-untyped]

    Application.objects.update_or_create(client_id=spec["client_id"], defaults={
        "name": spec["client_id"],
        "client_secret": spec["secret"],  # hashed when saved
        "client_type": Application.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
        "redirect_uris": " ".join(spec["redirect_uris"]),
        "algorithm": Application.RS256_ALGORITHM,
        "skip_authorization": True,  # no consent page: the directory's own application
    })


def main() -> None:
    django.setup()
    from django.core.management import call_command

    spec = json.load(sys.stdin)
    call_command("migrate", verbosity=0)
    for user in spec.get("users", []):
        seed_user(user)
    for client in spec.get("clients", []):
        seed_client(client)


if __name__ == "__main__":
    main()

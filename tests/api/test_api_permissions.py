"""The role matrix over every API endpoint: each persona, with a read+write token of its own,
gets exactly what the pages would give it. Refused calls reach no driver and enqueue nothing;
allowed ones take effect."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.roles import PERSONAS, prepare
from tests.support import drain, purge
from vdi import actions
from vdi.models import ApiToken, Desktop, Pool
from vdi.services import tokens

SEES_DESKTOP = ("owner", "helpdesk", "operator", "administrator")
SEES_POOL = ("owner", "member", "helpdesk", "operator", "administrator")
ACTORS = ("owner", "operator", "administrator")


def table(allowed: int, *personas: str, refused: int = 404,
          visible_but_refused: tuple[str, ...] = (), signed_in_status: int | None = None
          ) -> dict[str, int]:
    """The status each persona gets: ``allowed`` for ``personas``, 403 for those who see the
    object but may not act, ``refused`` for the rest, 401 without a live account."""
    result = {p: signed_in_status or refused for p in PERSONAS}
    result |= {p: 403 for p in visible_but_refused} | {p: allowed for p in personas}
    return result | {"anonymous": 401, "disabled_user": 401}


EVERYONE = table(200, *PERSONAS)
ADMINS_ONLY = table(200, "administrator", refused=403)
MATRIX: dict[str, dict[str, int]] = {
    "GET /api/pools/": EVERYONE,
    "GET pool": table(200, *SEES_POOL),
    "POST claim": table(201, "owner", "member", "administrator",
                        visible_but_refused=("helpdesk", "operator")),
    "POST drain": table(200, "operator", "administrator",
                        visible_but_refused=("owner", "member", "helpdesk")),
    "POST undrain": table(200, "operator", "administrator",
                          visible_but_refused=("owner", "member", "helpdesk")),
    "GET /api/desktops/": EVERYONE,
    "GET desktop": table(200, *SEES_DESKTOP),
    **{f"POST {a.name}": table(202, *ACTORS, visible_but_refused=("helpdesk",))
       for a in actions.REQUESTABLE},
    # tokens never get console tickets (a ticket belongs to a browser session)
    "POST console-ticket": table(403, *SEES_DESKTOP),
    "GET /api/images/": ADMINS_ONLY,
    "GET /api/image-versions/": ADMINS_ONLY,
    "GET /api/hosts/": table(200, "administrator", "helpdesk", refused=403),  # the dashboard
    "GET /api/operations/": EVERYONE,
    "GET /api/audit/": ADMINS_ONLY,
    "GET /api/quotas/": ADMINS_ONLY,
    "GET /api/quotas/me/": EVERYONE,
    "GET /api/tokens/": EVERYONE,
    "GET /api/schema/": {p: 200 for p in PERSONAS},  # public
}


def client_for(request, persona: str) -> Client:
    if persona == "anonymous":
        return Client()
    user = request.getfixturevalue(persona)
    was_active = user.is_active
    if not was_active:  # its token was made while it could still sign in
        type(user).objects.filter(pk=user.pk).update(is_active=True)
        user.refresh_from_db()
    made = tokens.make(user, "matrix", [ApiToken.READ, ApiToken.WRITE], 1)
    if not was_active:
        type(user).objects.filter(pk=user.pk).update(is_active=False)
    return Client(HTTP_AUTHORIZATION=f"Bearer {made.key}")


def send(client: Client, what: str, desktop: Desktop):
    method, _, target = what.partition(" ")
    paths = {
        "pool": f"/api/pools/{desktop.pool_id}/",
        **{name: f"/api/pools/{desktop.pool_id}/{name}/"
           for name in ("claim", "drain", "undrain")},
        "desktop": f"/api/desktops/{desktop.pk}/",
        "console-ticket": f"/api/desktops/{desktop.pk}/console-ticket/",
        **{a.name: f"/api/desktops/{desktop.pk}/actions/{a.name}/"
           for a in actions.REQUESTABLE},
    }
    path = paths.get(target, target)
    return client.post(path) if method == "POST" else client.get(path)




def effect(what: str, desktop: Desktop, pool: Pool, claims: str | None) -> bool:
    desktop.refresh_from_db()
    pool.refresh_from_db()
    if what == "POST drain":
        return pool.draining
    if what == "POST claim":
        return Desktop.objects.filter(pool=pool).count() == 2
    if claims is not None:
        return desktop.status == claims
    return False


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(MATRIX))
def test_api_matrix(request, running_desktop, pool, host, spy_driver, persona, what,
                    django_capture_on_commit_callbacks):
    purge(host.queue)
    if what == "POST undrain":
        Pool.objects.filter(pk=pool.pk).update(draining=True)
    claims = prepare(what, running_desktop)
    client = client_for(request, persona)
    with django_capture_on_commit_callbacks(execute=True):
        response = send(client, what, running_desktop)
    expected = MATRIX[what][persona]
    assert response.status_code == expected, f"{persona} {what}: {response.content[:300]!r}"
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}
    assert spy_driver == [], "no API request reaches a hypervisor"
    queued = drain(host.queue)
    took_effect = effect(what, running_desktop, pool, claims)
    if expected >= 400:
        assert queued == [] and not took_effect, f"{persona} {what} had an effect"
        assert running_desktop.owner.username == "owner"
    elif what.startswith("POST") and what not in ("POST undrain",):
        assert took_effect, f"{persona} {what} took no effect"
    if what == "POST undrain" and expected == 200:
        assert not Pool.objects.get(pk=pool.pk).draining


def test_every_endpoint_is_in_the_matrix():
    from vdi.api.urls import router

    described = " ".join(MATRIX)
    for prefix, viewset, _basename in router.registry:
        assert f"/api/{prefix}/" in described or prefix in ("pools", "desktops"), prefix
        for extra in viewset.get_extra_actions():
            path = extra.url_path  # type: ignore[attr-defined]
            assert path.startswith("actions/") or f"POST {path}" in MATRIX \
                or f"/api/{prefix}/{path}/" in described, f"{prefix} {path}"

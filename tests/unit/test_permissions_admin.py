"""The role matrix, admin side: every registered changelist (the table must name each one),
a desktop's change page, the publish and install pages, and every admin action, for every
persona (``tests/roles.py``).

Each persona gets exactly its status; a pool operator's lists hold only their pools. A refused
call reaches no hypervisor driver, enqueues nothing and changes nothing; an allowed one takes
effect (the desktop moves and its task is queued, the pool drains, the rollout pauses...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.contrib import admin
from django.http import HttpResponseBase
from django.test import Client

from tests.roles import (
    ADMIN_SITE_LOGIN,
    DENIED,
    GONE,
    OK,
    PERSONAS,
    STAFF,
    admin_page,
    client_for,
    outcome,
)
from tests.support import drain, purge
from vdi.choices import DesktopStatus, RolloutStatus
from vdi.models import AuditEvent, Desktop, InstallMedia, Pool, Rollout, UserQuota
from vdi.models.webhooks import Webhook, WebhookDelivery

pytestmark = pytest.mark.django_db

POOL_STAFF = ("helpdesk", "operator", "other_operator", "administrator")
ADMINS = admin_page("administrator")

# Every model the admin registers: who gets its list (a test checks none is left out).
CHANGELISTS: dict[str, dict[str, str]] = {
    "auth.user": ADMINS,
    "auth.group": ADMINS,
    "account.emailaddress": ADMINS,
    "mfa.authenticator": ADMINS,
    "usersessions.usersession": ADMINS,
    "vdi.desktop": admin_page(*POOL_STAFF),
    "vdi.pool": admin_page(*POOL_STAFF),
    "vdi.consolesession": admin_page(*POOL_STAFF),
    "vdi.operation": admin_page("helpdesk", "administrator"),
    "vdi.deleteddesktop": ADMINS,
    "vdi.auditevent": ADMINS,
    "vdi.installmedia": ADMINS,
    "vdi.host": admin_page("helpdesk", "administrator"),
    "vdi.goldenimage": ADMINS,
    "vdi.imageversion": ADMINS,
    "vdi.userquota": ADMINS,
    "vdi.reconcilerun": admin_page("helpdesk", "administrator"),
    "vdi.stray": admin_page("helpdesk", "administrator"),
    "vdi.recording": ADMINS,
    "vdi.rollout": ADMINS,
    "vdi.webhook": ADMINS,
    "vdi.webhookdelivery": ADMINS,
    "socialaccount.socialaccount": ADMINS,
    "socialaccount.socialapp": ADMINS,
    "socialaccount.socialtoken": ADMINS,
}
# Lists scoped by pool: who sees the owner's desktop (or its pool) in them.
SCOPED = {"vdi.desktop": ("helpdesk", "operator", "administrator"),
          "vdi.pool": ("helpdesk", "operator", "administrator")}


def test_every_registered_admin_page_is_in_the_matrix():
    assert set(CHANGELISTS) == {m._meta.label_lower for m in admin.site._registry}


def changelist(label: str) -> str:
    return f"/admin/{label.replace('.', '/')}/"


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("label", list(CHANGELISTS))
def test_changelist_matrix(request, running_desktop, spy_driver, persona, label):
    response = client_for(request, persona).get(changelist(label))
    assert outcome(response) == CHANGELISTS[label][persona], f"{persona} {label}"
    assert spy_driver == []
    if label in SCOPED and outcome(response) == OK:
        shown = f"/admin/vdi/{label.split('.')[1]}/{running_desktop.pk}/change/"
        if label == "vdi.pool":
            shown = f"/admin/vdi/pool/{running_desktop.pool_id}/change/"
        assert (shown in response.content.decode()) == (persona in SCOPED[label]), persona


PAGES: dict[str, dict[str, str]] = {
    "GET /admin/": admin_page(*STAFF),
    "GET desktop": admin_page("helpdesk", "operator", "administrator") | {
        "other_operator": GONE},
    "GET publish": admin_page("administrator"),
    "POST publish": admin_page("administrator"),
    "GET install": admin_page("administrator"),
    "POST install": admin_page("administrator"),
}


@pytest.fixture
def install(owner: Any, host: Any, tmp_path: Path) -> Desktop:
    """An install desktop of the owner's, running, and its installer ISO."""
    iso = tmp_path / "installer.iso"
    iso.write_bytes(b"CD001")
    media = InstallMedia.objects.create(name="installer", path=str(iso), size_bytes=5)
    return Desktop.objects.create(
        owner=owner, host=host, install_media=media, install_profile="linux-desktop",
        install_disk_gib=4, domain_name="vditest-install", disk_path="/nonexistent/i.qcow2",
        serial_log_path="/nonexistent/i.log", vcpus=1, memory_mib=512,
        status=DesktopStatus.RUNNING)


def send_page(client: Client, what: str, desktop: Desktop, install: Desktop) -> Any:
    publish = f"/admin/vdi/desktop/{install.pk}/publish/"
    make = f"/admin/vdi/installmedia/{install.install_media_id}/install/"
    return {
        "GET /admin/": lambda: client.get("/admin/"),
        "GET desktop": lambda: client.get(f"/admin/vdi/desktop/{desktop.pk}/change/"),
        "GET publish": lambda: client.get(publish),
        "POST publish": lambda: client.post(publish, {"image_name": "published",
                                                      "readiness": "agent", "sysprep": "on"}),
        "GET install": lambda: client.get(make),
        "POST install": lambda: client.post(make, {"profile": "linux-desktop", "disk_gib": 4,
                                                   "memory_mib": 512, "vcpus": 1}),
    }[what]()


def page_effect(what: str, install: Desktop, queued: list[dict[str, Any]]) -> bool | None:
    steps = [m["args"][0] for m in queued]
    if what == "POST publish":
        return Desktop.objects.get(pk=install.pk).status == DesktopStatus.PUBLISHING and (
            steps == ["publish"])
    if what == "POST install":
        return Desktop.objects.filter(install_media=install.install_media).count() == 2 and (
            steps == ["provision"])
    return None


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("what", list(PAGES))
def test_admin_page_matrix(request, running_desktop, install, spy_driver, persona, what,
                           django_capture_on_commit_callbacks):
    purge(install.host.queue)
    with django_capture_on_commit_callbacks(execute=True):
        response = send_page(client_for(request, persona), what, running_desktop, install)
    expected = PAGES[what][persona]
    assert outcome(response) == expected, f"{persona} {what}: {response.status_code}"
    assert spy_driver == []
    queued = drain(install.host.queue)
    if expected != OK:
        assert queued == []
    effect = page_effect(what, install, queued)
    assert effect is None or effect == (expected == OK), f"{persona} {what}: the effect"


# --- admin actions ----------------------------------------------------------------------------

@dataclass
class Stage:
    desktop: Desktop
    pool: Pool
    member: Any
    rollout: Rollout
    quota: UserQuota
    email: EmailAddress
    delivery: WebhookDelivery

    def status(self) -> str:
        return Desktop.objects.get(pk=self.desktop.pk).status


@pytest.fixture
def stage(running_desktop: Desktop, pool: Pool, member: Any, owner: Any,
          image_version: Any) -> Stage:
    AuditEvent.objects.create(action="desktop.claim", actor_name="owner", target_repr="x")
    return Stage(
        desktop=running_desktop, pool=pool, member=member,
        rollout=Rollout.objects.create(pool=pool, from_version=image_version,
                                       to_version=image_version, status=RolloutStatus.CANARY),
        quota=UserQuota.objects.create(user=member, max_desktops=2),
        email=EmailAddress.objects.create(user=owner, email="owner@example.org"),
        delivery=WebhookDelivery.objects.create(
            webhook=Webhook.objects.create(name="hook", url="http://127.0.0.1:9/",
                                           events="desktop.*", secret="s" * 32),
            event="desktop.claim", payload={}, status=WebhookDelivery.Status.FAILED))


@dataclass(frozen=True)
class Action:
    model: str
    allowed: tuple[str, ...]
    arrange: Callable[[Stage], None]
    took_effect: Callable[[Stage, HttpResponseBase, list[dict[str, Any]]], bool]
    target: Callable[[Stage], int]
    form: Callable[[Stage], dict[str, Any]] = lambda s: {}


DESKTOP_ACTORS = ("operator", "administrator")


def on_desktop(s: Stage) -> int:
    return s.desktop.pk


def on_pool(s: Stage) -> int:
    return s.pool.pk


def on_rollout(s: Stage) -> int:
    return s.rollout.pk


def desktop_action(step: str, before: str, to: str) -> Action:
    """The desktop, ``before``, moves to ``to`` and the worker's ``step`` is queued."""

    def arrange(s: Stage) -> None:
        Desktop.objects.filter(pk=s.desktop.pk).update(status=before)

    def effect(s: Stage, response: Any, queued: list[dict[str, Any]]) -> bool:
        return s.status() == to and [m["args"][0] for m in queued] == [step]

    return Action("vdi/desktop", DESKTOP_ACTORS, arrange, effect, on_desktop)


def rollout_action(to: str, before: str = RolloutStatus.CANARY) -> Action:
    def arrange(s: Stage) -> None:
        Rollout.objects.filter(pk=s.rollout.pk).update(status=before)

    return Action("vdi/rollout", ("administrator",), arrange,
                  lambda s, r, q: Rollout.objects.get(pk=s.rollout.pk).status == to, on_rollout)


def stopped_persistent(s: Stage) -> None:
    Pool.objects.filter(pk=s.pool.pk).update(persistence="persistent")
    Desktop.objects.filter(pk=s.desktop.pk).update(status=DesktopStatus.STOPPED,
                                                   data_disk_path="/nonexistent/d.qcow2")


def drained(s: Stage) -> None:
    Pool.objects.filter(pk=s.pool.pk).update(draining=True)


def exported(s: Stage, response: Any, queued: list[dict[str, Any]]) -> bool:
    return (response.get("Content-Type", "").startswith("text/csv")
            and b"desktop.claim" in getattr(response, "content", b"")
            and AuditEvent.objects.filter(action="audit.export").exists())


S, R = DesktopStatus, RolloutStatus
ACTIONS: dict[str, Action] = {
    "start_desktops": desktop_action("start", S.STOPPED, S.STARTING),
    "stop_desktops": desktop_action("stop", S.RUNNING, S.STOPPING),
    "restart_desktops": desktop_action("restart", S.RUNNING, S.RESTARTING),
    "delete_desktops": desktop_action("delete", S.RUNNING, S.DELETING),
    "reset_desktops": desktop_action("reset", S.RUNNING, S.RESETTING),
    "release_desktops": desktop_action("release", S.RUNNING, S.RESETTING),
    "hand_over_desktops": Action(
        "vdi/desktop", DESKTOP_ACTORS, stopped_persistent,
        lambda s, r, q: Desktop.objects.get(pk=s.desktop.pk).owner == s.member, on_desktop,
        lambda s: {"apply": "Hand over", "new_owner": s.member.pk, "confirm": "on"}),
    "drain_pools": Action("vdi/pool", DESKTOP_ACTORS, lambda s: None,
                          lambda s, r, q: Pool.objects.get(pk=s.pool.pk).draining, on_pool),
    "undrain_pools": Action("vdi/pool", DESKTOP_ACTORS, drained,
                            lambda s, r, q: not Pool.objects.get(pk=s.pool.pk).draining,
                            on_pool),
    "export_audit_csv": Action("vdi/auditevent", ("administrator",), lambda s: None, exported,
                               lambda s: AuditEvent.objects.get(action="desktop.claim").pk),
    "rollout_pause": rollout_action(R.PAUSED),
    "rollout_resume": rollout_action(R.CANARY, before=R.PAUSED),
    "rollout_roll_back": rollout_action(R.ROLLING_BACK),
    # Django's own bulk delete (through the audited records service) and allauth's action
    "delete_selected": Action(
        "vdi/userquota", ("administrator",), lambda s: None,
        lambda s, r, q: not UserQuota.objects.filter(pk=s.quota.pk).exists(),
        lambda s: s.quota.pk, lambda s: {"post": "yes"}),
    "retry_now": Action(
        "vdi/webhookdelivery", ("administrator",), lambda s: None,
        lambda s, r, q: WebhookDelivery.objects.get(pk=s.delivery.pk).status
        == WebhookDelivery.Status.PENDING and AuditEvent.objects.filter(
            action="webhook.retry").exists(),
        lambda s: s.delivery.pk),
    "make_verified": Action(
        "account/emailaddress", ("administrator",), lambda s: None,
        lambda s, r, q: EmailAddress.objects.get(pk=s.email.pk).verified,
        lambda s: s.email.pk),
}


def test_every_admin_action_is_in_the_matrix():
    declared = {name for model_admin in admin.site._registry.values()
                for name in (a if isinstance(a, str) else a.__name__
                             for a in model_admin.actions or ())}
    assert declared <= set(ACTIONS), declared - set(ACTIONS)


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", list(ACTIONS))
def test_admin_action_matrix(request, stage, host, spy_driver, persona, name,
                             django_capture_on_commit_callbacks):
    action = ACTIONS[name]
    action.arrange(stage)
    purge(host.queue)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(request, persona).post(
            f"/admin/{action.model}/",
            {"action": name, "_selected_action": [action.target(stage)], **action.form(stage)})
    allowed = persona in action.allowed
    expected = OK if persona in STAFF else ADMIN_SITE_LOGIN[persona]
    assert outcome(response) in (expected, DENIED), f"{persona} {name}: {response.status_code}"
    assert spy_driver == []
    queued = drain(host.queue)
    assert action.took_effect(stage, response, queued) == allowed, f"{persona} {name}"
    if not allowed:
        assert queued == [], "a refused action enqueues nothing"
        assert Desktop.objects.get(pk=stage.desktop.pk).owner.username == "owner"

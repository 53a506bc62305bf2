"""Audit rows for what happens to accounts outside the portal's own services: users, groups
and permissions (whatever page or command changed them), two-factor devices, passwords, and
sign-ins refused by the rate limit."""

from __future__ import annotations

from typing import Any

from allauth.account.signals import password_reset
from allauth.mfa.signals import authenticator_added, authenticator_removed, authenticator_reset
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from vdi.audit_context import current
from vdi.services import audit

User = get_user_model()
WATCHED_FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff",
                  "is_superuser", "password")


def _record(action: str, target: Any, **details: Any) -> None:
    actor = current()
    user = actor.user if getattr(actor.user, "is_authenticated", False) else None
    audit.record(user, action, target, actor.address, **details)


@receiver(pre_save, sender=User)
def remember_fields(sender: Any, instance: Any, **kwargs: Any) -> None:
    instance._vdi_audit_before = sender.objects.filter(pk=instance.pk).values(
        *WATCHED_FIELDS).first()


@receiver(post_save, sender=User)
def user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        _record("user.add", instance, is_staff=instance.is_staff,
                is_superuser=instance.is_superuser)
        return
    before = getattr(instance, "_vdi_audit_before", None) or {}
    changed = sorted(f for f in WATCHED_FIELDS if f in before
                     and before[f] != getattr(instance, f))
    if "password" in changed:
        _record("user.password_changed", instance)
        changed.remove("password")
    if changed:
        _record("user.change", instance, fields=changed,
                **{f: getattr(instance, f) for f in changed if f.startswith("is_")})


@receiver(post_delete, sender=User)
def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    _record("user.delete", instance)


@receiver(post_save, sender=Group)
def group_saved(sender: Any, instance: Group, created: bool, **kwargs: Any) -> None:
    _record("group.add" if created else "group.change", instance)


@receiver(post_delete, sender=Group)
def group_deleted(sender: Any, instance: Group, **kwargs: Any) -> None:
    _record("group.delete", instance)


def _names(model: Any, pk_set: set[int] | None) -> list[str]:
    if not pk_set:
        return []
    field = "codename" if model.__name__ == "Permission" else (
        "name" if model is Group else "username")
    return sorted(model.objects.filter(pk__in=pk_set).values_list(field, flat=True))


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
@receiver(m2m_changed, sender=Group.permissions.through)
def memberships_changed(sender: Any, instance: Any, action: str, model: Any,
                        pk_set: set[int] | None, reverse: bool, **kwargs: Any) -> None:
    """user.groups_added, user.permissions_removed, group.members_added,
    group.permissions_added... with the names of what was added or removed."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    verb = action.removeprefix("post_").replace("add", "added").replace("remove", "removed")
    verb = "cleared" if verb == "clear" else verb
    if not reverse:
        what = "groups" if sender is User.groups.through else "permissions"
    elif sender is User.groups.through:
        what = "members"
    else:
        what = "holders"
    _record(f"{instance._meta.model_name}.{what}_{verb}", instance,
            names=_names(model, pk_set))


@receiver(authenticator_added)
@receiver(authenticator_removed)
@receiver(authenticator_reset)
def two_factor_changed(sender: Any, request: HttpRequest | None, user: Any,
                       authenticator: Any, signal: Any, **kwargs: Any) -> None:
    verb = {authenticator_added: "added", authenticator_removed: "removed",
            authenticator_reset: "reset"}[signal]
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    audit.record(user, f"mfa.{verb}", user, address, kind=str(authenticator.type))


@receiver(password_reset)
def password_reset_by_mail(sender: Any, request: HttpRequest | None, user: Any,
                           **kwargs: Any) -> None:
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    audit.record(user, "auth.password_reset", user, address, via="mail link")

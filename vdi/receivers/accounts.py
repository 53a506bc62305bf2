"""Account changes reach the desktops and open consoles (``vdi.services.accounts``): a
disabled or deleted account, a changed password, changed groups, grants, permissions or
sessions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from vdi.models import Pool
from vdi.services import accounts

User = get_user_model()


@receiver(pre_save, sender=User)
def remember_what_changes(sender: Any, instance: Any, **kwargs: Any) -> None:
    before = sender.objects.filter(pk=instance.pk).values("is_active", "password").first()
    instance._vdi_before = before


@receiver(post_save, sender=User)
def act_on_account_changes(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_vdi_before", None)
    if created or before is None:
        return
    if before["is_active"] and not instance.is_active:
        accounts.account_closed(instance, "account disabled")
    elif before["password"] != instance.password:
        accounts.password_changed(instance)


@receiver(pre_delete, sender=User)
def act_on_account_deletion(sender: Any, instance: Any, **kwargs: Any) -> None:
    accounts.account_closed(instance, "account deleted")


def _users_of_groups(group_ids: set[int]) -> list[int]:
    return list(User.objects.filter(groups__in=group_ids).values_list("pk", flat=True))


@receiver(m2m_changed, sender=User.groups.through)
@receiver(m2m_changed, sender=User.user_permissions.through)
def user_access_changed(sender: Any, instance: Any, action: str, reverse: bool,
                        pk_set: set[int] | None, **kwargs: Any) -> None:
    if not action.startswith("post_"):
        return
    if isinstance(instance, User):
        accounts.access_changed(instance.pk)
    elif reverse and isinstance(instance, Group):  # group.user_set changed
        for user_id in pk_set or User.objects.filter(groups=instance).values_list("pk",
                                                                                   flat=True):
            accounts.access_changed(user_id)


@receiver(m2m_changed, sender=Group.permissions.through)
def group_permissions_changed(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action.startswith("post_") and isinstance(instance, Group):
        for user_id in _users_of_groups({instance.pk}):
            accounts.access_changed(user_id)


@receiver(m2m_changed, sender=Pool.users.through)
@receiver(m2m_changed, sender=Pool.groups.through)
def pool_grants_changed(sender: Any, instance: Any, action: str, pk_set: set[int] | None,
                        model: Any, **kwargs: Any) -> None:
    """A grant taken away (or any change): the pool's users check their consoles again."""
    if not action.startswith("post_") or not isinstance(instance, Pool):
        return
    users = set(instance.desktops.exclude(owner=None).values_list("owner_id", flat=True))
    if model is User:
        users |= set(pk_set or ())
    elif model is Group:
        users |= set(_users_of_groups(set(pk_set or ())))
    for user_id in users:
        accounts.access_changed(user_id)


@receiver(post_delete, sender=Session)
def session_ended(sender: Any, instance: Session, **kwargs: Any) -> None:
    """A browser session ended (signed out, here or from another browser)."""
    user_id = instance.get_decoded().get("_auth_user_id")
    if user_id:
        accounts.access_changed(int(user_id))

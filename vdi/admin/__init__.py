"""The Django admin for the domain, one module a subject. Every change goes through a
service: desktop actions (``vdi.actions``), draining, hand-overs, and plain edits and deletes
(``vdi.services.records``). Pool operators see and change only the pools they operate and
those pools' desktops; every action declares the permission it needs."""

from vdi.admin import (
    audit,
    desktops,
    groups,
    images,
    media,
    pools,
    reconcile,
    recordings,
    rollouts,
    webhooks,
)

__all__ = ["audit", "desktops", "groups", "images", "media", "pools", "reconcile", "recordings",
           "rollouts", "webhooks"]

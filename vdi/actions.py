"""Desktop actions, each defined once.

An entry says which states the action may start from, the transitional state it claims and the
state it ends in, whether it ends open consoles, the permission it needs on someone else's
desktop, whether an owner may ask for it on their own, its words (label, confirmation, what
did not happen when it fails) and its rules. The state machine (``vdi.state``), the services,
the one Celery task, the views, the admin and the templates all read this table; the worker
has one step per entry (``vdi.worker.jobs``). Adding an action is one entry here plus one
worker step.

Imports nothing but the vocabularies, so models, services and the worker can all read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from vdi.choices import DesktopStatus as S


class PoolLike(Protocol):
    @property
    def is_persistent(self) -> bool: ...

    @property
    def is_automatic(self) -> bool: ...


class DesktopLike(Protocol):
    status: str

    @property
    def pool(self) -> Any: ...

    @property
    def is_install(self) -> bool: ...

    @property
    def is_maintenance(self) -> bool: ...


# A rule returns why the action can't be done to this desktop, or None when it can.
Rule = Callable[[DesktopLike], str | None]


def _persistent(desktop: DesktopLike) -> bool:
    return desktop.pool is not None and bool(desktop.pool.is_persistent)


def _persistent_is_not_released(desktop: DesktopLike) -> str | None:
    if _persistent(desktop):
        return ("A persistent desktop keeps its user's data: it can't be released to someone "
                "else. Delete it to give up the desktop and its data.")
    return None


def _automatic_is_released_not_deleted(desktop: DesktopLike) -> str | None:
    if desktop.pool is not None and desktop.pool.is_automatic:
        return "Desktops of an automatic pool are released, not deleted."
    return None


def _from_an_image(desktop: DesktopLike) -> str | None:
    if desktop.is_install:
        return "An install desktop has no image to go back to: delete it, or publish it."
    if desktop.is_maintenance:
        return ("A maintenance desktop keeps its changes until it is published as the image's "
                "next version: publish it, or delete it to throw them away.")
    return None


def _persistent_only(desktop: DesktopLike) -> str | None:
    if not _persistent(desktop):
        return ("Only persistent desktops have snapshots: a non-persistent one goes back to "
                "its image anyway.")
    return None


def _installs_only(desktop: DesktopLike) -> str | None:
    if not (desktop.is_install or desktop.is_maintenance):
        return "Only an install desktop or a maintenance desktop is published as an image."
    return None


@dataclass(frozen=True)
class DesktopAction:
    name: str
    label: str
    allowed_from: frozenset[S]
    claims: S
    succeeds_to: S | None  # None: the desktop is gone (archived) when the action succeeds
    ends_consoles: bool
    permission: str  # "app_label.codename", needed to act on a desktop that is not yours
    self_service: bool = True  # an owner may ask for it on their own desktop
    confirm: str = ""  # asked before the request; {data} and {data_delete} are filled in
    admin_label: str = ""
    gives_back: bool = False  # the desktop leaves its owner at the claim
    rules: tuple[Rule, ...] = ()  # hold for everyone
    owner_rules: tuple[Rule, ...] = ()  # hold when an owner asks without the permission
    fails_to: S = S.ERROR  # where a failure leaves the desktop
    # Back to the state it was claimed from, done or failed (snapshots of a running or of a
    # stopped desktop); the service keeps that state in the operation's params ("origin").
    returns: bool = False
    ends_as_step_says: bool = False  # the worker's step says where it ends (a revert)
    failure: str = ""  # what did not happen, for the person who asked ("The backup could...")

    @property
    def codename(self) -> str:
        return self.permission.partition(".")[2]

    @property
    def audit_action(self) -> str:
        return f"desktop.{self.name}"

    @property
    def failed_words(self) -> str:
        """What did not happen, in a sentence for the person who asked (no period)."""
        return self.failure or f"The {self.name} failed"

    def confirmation(self, desktop: DesktopLike) -> str:
        persistent = _persistent(desktop)
        return self.confirm.format(
            data="Your data disk (/data) is kept." if persistent else "",
            data_delete="Its data disk and your files on it are deleted too. " if persistent
            else "",
        ).strip()

    def refusal(self, desktop: DesktopLike, *, as_owner: bool) -> str | None:
        """Why this desktop can't take the action now (state aside), or None."""
        for rule in self.rules + (self.owner_rules if as_owner else ()):
            reason = rule(desktop)
            if reason is not None:
                return reason
        return None


_ANY_SETTLED = frozenset({S.RUNNING, S.STOPPED, S.ERROR})

# A new desktop is recorded already provisioning; a failed provisioning (which removed what it
# had made) may be tried again from the error it left (``vdi.services.retries``).
PROVISION = DesktopAction(
    "provision", "Provision", frozenset({S.ERROR}), S.PROVISIONING, S.RUNNING,
    ends_consoles=False, permission="vdi.add_desktop", self_service=False,
    failure="The desktop could not be made")
START = DesktopAction(
    "start", "Start", frozenset({S.STOPPED, S.ERROR}), S.STARTING, S.RUNNING,
    ends_consoles=False, permission="vdi.start_desktop", admin_label="Start selected desktops",
    failure="The desktop could not be started")
STOP = DesktopAction(
    "stop", "Stop", frozenset({S.RUNNING}), S.STOPPING, S.STOPPED, ends_consoles=True,
    permission="vdi.stop_desktop", admin_label="Stop selected desktops",
    failure="The desktop could not be stopped")
RESTART = DesktopAction(
    "restart", "Restart", frozenset({S.RUNNING}), S.RESTARTING, S.RUNNING, ends_consoles=True,
    permission="vdi.restart_desktop", admin_label="Restart selected desktops",
    failure="The desktop could not be restarted")
DELETE = DesktopAction(
    "delete", "Delete", _ANY_SETTLED, S.DELETING, None, ends_consoles=True,
    permission="vdi.delete_desktop",
    confirm="Delete this desktop? {data_delete}This cannot be undone.",
    admin_label="Delete selected desktops (their virtual machines and disks)",
    owner_rules=(_automatic_is_released_not_deleted,),
    failure="The desktop could not be deleted")
RESET = DesktopAction(
    "reset", "Reset", _ANY_SETTLED, S.RESETTING, S.RUNNING, ends_consoles=True,
    permission="vdi.reset_desktop",
    confirm="Reset to the golden image? Everything on the system disk is lost: installed "
            "programs and files outside the data disk. {data}",
    admin_label="Reset selected desktops to the golden image", rules=(_from_an_image,),
    failure="The desktop could not be reset to its image")
RELEASE = DesktopAction(
    "release", "Release", _ANY_SETTLED, S.RESETTING, S.RUNNING, ends_consoles=True,
    permission="vdi.release_desktop", gives_back=True,
    confirm="Give this desktop back to the pool? It is reset to the golden image: everything "
            "you did on it is lost.",
    admin_label="Force release (reset to the image, back to the pool)",
    rules=(_persistent_is_not_released, _from_an_image),
    failure="The desktop could not be given back")
PUBLISH = DesktopAction(
    "publish", "Publish", frozenset({S.RUNNING, S.STOPPED}), S.PUBLISHING, S.STOPPED,
    ends_consoles=True, permission="vdi.publish_desktop", self_service=False,
    rules=(_installs_only,), fails_to=S.STOPPED,  # it works on a copy: the desktop is intact
    failure="The desktop could not be published as an image")
_LIVE_OR_STOPPED = frozenset({S.RUNNING, S.STOPPED})
# Snapshots name what they act on, so they are asked for through vdi.services.snapshots (no
# admin_label: they are not the desktop list's buttons).
SNAPSHOT = DesktopAction(
    "snapshot", "Take a snapshot", _LIVE_OR_STOPPED, S.SNAPSHOTTING, S.RUNNING,
    ends_consoles=False, permission="vdi.snapshot_desktop", rules=(_persistent_only,),
    returns=True, failure="The snapshot could not be taken")
DELETE_SNAPSHOT = DesktopAction(
    "unsnapshot", "Delete a snapshot", _LIVE_OR_STOPPED, S.SNAPSHOTTING, S.RUNNING,
    ends_consoles=False, permission="vdi.snapshot_desktop", rules=(_persistent_only,),
    returns=True, failure="The snapshot could not be deleted")
REVERT = DesktopAction(
    "revert", "Revert to a snapshot", _ANY_SETTLED, S.REVERTING, S.RUNNING, ends_consoles=True,
    permission="vdi.snapshot_desktop", rules=(_persistent_only,), ends_as_step_says=True,
    confirm="Go back to this snapshot? Everything since it (on the disks it covers) is lost.",
    failure="The desktop could not go back to the snapshot")
BACKUP = DesktopAction(
    "backup", "Back up", _LIVE_OR_STOPPED, S.BACKING_UP, S.RUNNING, ends_consoles=False,
    permission="vdi.backup_desktop", rules=(_persistent_only,), returns=True,
    failure="The backup could not be made")
RESTORE = DesktopAction(
    "restore", "Restore a backup", _ANY_SETTLED, S.RESTORING, S.STOPPED, ends_consoles=True,
    permission="vdi.backup_desktop", rules=(_persistent_only,),
    confirm="Restore this backup in place? The desktop is powered off and its disks become "
            "what they were at the backup: everything since, and its snapshots, are lost.",
    failure="The backup could not be restored")

ACTIONS: dict[str, DesktopAction] = {
    a.name: a for a in (PROVISION, START, STOP, RESTART, DELETE, RESET, RELEASE, PUBLISH,
                        SNAPSHOT, DELETE_SNAPSHOT, REVERT, BACKUP, RESTORE)
}
# What people can ask for (provisioning is the system's own, through a claim or a pool).
REQUESTABLE: tuple[DesktopAction, ...] = tuple(a for a in ACTIONS.values() if a.admin_label)


def get(name: str) -> DesktopAction:
    """The action called ``name``; KeyError for an unknown one."""
    return ACTIONS[name]


def operation_kinds() -> list[tuple[str, str]]:
    """Choices for ``Operation.kind``."""
    return [(a.name, a.label.lower()) for a in ACTIONS.values()]


# Permissions on desktops that are not actions: the console, watching it, handing it over.
CONSOLE = "vdi.console_desktop"  # open someone else's console, with keyboard and mouse
SHADOW = "vdi.shadow_desktop"  # watch someone else's console, view only (they are told)
HANDOVER = "vdi.handover_desktop"  # give a persistent desktop, with its data, to another user
OTHER_PERMISSIONS = (
    ("console_desktop", "Can use the console of others' desktops"),
    ("shadow_desktop", "Can watch the console of others' desktops (view only)"),
    ("handover_desktop", "Can hand a persistent desktop with its data to another user"),
)


def custom_permissions() -> tuple[tuple[str, str], ...]:
    """Permissions Django does not make by itself (add and delete are its own)."""
    builtin = {"add_desktop", "change_desktop", "delete_desktop", "view_desktop"}
    named: dict[str, str] = {}
    for action in ACTIONS.values():
        if action.codename not in builtin:
            named.setdefault(action.codename, f"Can {action.name} desktops")
    named["snapshot_desktop"] = "Can take, revert and delete snapshots of desktops"
    named["backup_desktop"] = "Can back up desktops and restore their backups"
    return tuple(named.items()) + OTHER_PERMISSIONS

"""Image rollouts: a new version reaches a pool canary first, and goes back by itself when
the canaries are not healthy.

A pool that follows "latest" gets a rollout when a new version of its image is ready
(``version_ready``). Its canaries are a share (``rollout_canary_percent``) of its idle
desktops (nobody's, pristine, running or stopped), recomposed on the new version by a reset
that names it. A canary is healthy when its guest says it is ready (agent, or serial marker)
within ``rollout_health_seconds``. More failures than ``rollout_max_failed_percent`` roll the
canaries back to the old version, and the pool keeps serving it. Otherwise the pool serves
the new version from then on: its other idle desktops are recomposed, new and reset desktops
get it, and the desktops in use move at their next reset or release, never before. Beat
moves rollouts on (``advance_all``); administrators pause, resume or roll one back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import models, transaction
from django.utils import timezone

from vdi import actions
from vdi.choices import DesktopStatus, RolloutStatus, VersionPolicy
from vdi.live import events as live
from vdi.models import Desktop, ImageVersion, Pool, Rollout
from vdi.services import audit
from vdi.services.access import User
from vdi.services.desktops import perform
from vdi.services.errors import ServiceError
from vdi.state import TransitionRefused

ACTIVE = (RolloutStatus.CANARY, RolloutStatus.ROLLING_BACK)
UNDER_WAY = (*ACTIVE, RolloutStatus.PAUSED)  # neither done nor rolled back
IDLE_STATES = (DesktopStatus.RUNNING, DesktopStatus.STOPPED)


def version_ready(version: ImageVersion) -> list[Rollout]:
    """A new version of an image is ready: each pool following "latest" starts a rollout."""
    started = []
    for pool in Pool.objects.filter(image=version.image, version_policy=VersionPolicy.LATEST):
        current = pool.serving_version or _previous(version)
        if current is not None and current.number >= version.number:
            continue
        Rollout.objects.filter(pool=pool, status__in=UNDER_WAY).update(
            status=RolloutStatus.ROLLED_BACK, finished_at=timezone.now(),
            note="superseded by a newer version")
        if pool.serving_version is None:  # until the canaries pass, the pool serves this one
            Pool.objects.filter(pk=pool.pk).update(serving_version=current)
        rollout = Rollout.objects.create(pool=pool, from_version=current, to_version=version)
        live.rollout_changed(rollout.pk, pool.pk)
        started.append(rollout)
    return started


def _previous(version: ImageVersion) -> ImageVersion | None:
    return (ImageVersion.objects.filter(image=version.image, number__lt=version.number)
            .order_by("-number").first())


def _update(rollout: Rollout, **fields: object) -> None:
    """Change the rollout's row; the dashboards that show it hear of it."""
    Rollout.objects.filter(pk=rollout.pk).update(**fields)
    live.rollout_changed(rollout.pk, rollout.pool_id)


def advance_all(now: datetime | None = None) -> list[str]:
    """Beat: every rollout under way takes its next step."""
    now = now or timezone.now()
    return [f"{r}: {advance(r, now)}" for r in Rollout.objects.filter(status__in=ACTIVE)]


def advance(rollout: Rollout, now: datetime) -> str:
    if rollout.status == RolloutStatus.CANARY:
        if not rollout.canaries:
            return _start_canaries(rollout, now)
        return _judge_canaries(rollout, now)
    if rollout.status == RolloutStatus.ROLLING_BACK:
        return _roll_back(rollout)
    return "nothing to do"


def idle_desktops(pool: Pool) -> list[Desktop]:
    return list(Desktop.objects.filter(pool=pool, owner__isnull=True, pristine=True,
                                       status__in=IDLE_STATES).order_by("pk"))


def _recompose(desktops: list[Desktop], version: ImageVersion | None, why: str) -> list[int]:
    """Reset each desktop onto ``version``; the ids it asked for (a desktop that changed
    state or hands meanwhile is left alone)."""
    asked = []
    params = {"version": version.pk} if version is not None else {}
    for desktop in desktops:
        try:
            perform(desktop, actions.RESET.name, None, params=params, rollout=why)
        except (ServiceError, TransitionRefused):
            continue
        asked.append(desktop.pk)
    return asked


def _start_canaries(rollout: Rollout, now: datetime) -> str:
    pool = rollout.pool
    idle = [d for d in idle_desktops(pool) if d.image_version_id != rollout.to_version_id]
    if not idle:
        return _promote(rollout, "no idle desktop to try it on: new and reset desktops get it")
    count = max(1, math.ceil(len(idle) * pool.rollout_canary_percent / 100))
    canaries = _recompose(idle[:count], rollout.to_version, f"canary of {rollout.to_version}")
    _update(rollout, canaries=canaries, canaries_started_at=now)
    rollout.canaries, rollout.canaries_started_at = canaries, now
    return f"{len(canaries)} canary desktop(s) recomposed"


def health(desktop: Desktop | None, rollout: Rollout, now: datetime) -> bool | None:
    """True: ready on the new version; False: failed or out of time; None: not yet."""
    if desktop is None or desktop.status == DesktopStatus.ERROR:
        return False
    if _booted(desktop, rollout) and desktop.guest_ready_at:
        return True
    return False if now > canary_deadline(desktop, rollout, now) else None


def canary_deadline(desktop: Desktop, rollout: Rollout, now: datetime) -> datetime:
    """When a canary not ready yet counts as failed. The time counts from its boot on the new
    version (its reset itself gets as long again)."""
    window = timedelta(seconds=rollout.pool.rollout_health_seconds)
    started = rollout.canaries_started_at or now
    if _booted(desktop, rollout):
        return max(started, desktop.status_changed_at) + window
    return started + 2 * window


def _booted(desktop: Desktop, rollout: Rollout) -> bool:
    return (desktop.image_version_id == rollout.to_version_id
            and desktop.status == DesktopStatus.RUNNING)


def _judge_canaries(rollout: Rollout, now: datetime) -> str:
    desktops = Desktop.objects.in_bulk(rollout.canaries)
    verdicts = {pk: health(desktops.get(pk), rollout, now) for pk in rollout.canaries}
    if any(v is None for v in verdicts.values()):
        return "waiting for the canaries"
    failed = [pk for pk, healthy in verdicts.items() if not healthy]
    _update(rollout, failed=failed)
    allowed = rollout.pool.rollout_max_failed_percent * len(verdicts) / 100
    if len(failed) > allowed:
        _update(
            rollout, status=RolloutStatus.ROLLING_BACK,
            note=f"{len(failed)} of {len(verdicts)} canaries were not ready within "
                 f"{rollout.pool.rollout_health_seconds} s: rolling back")
        audit.record(None, "rollout.failed", rollout.pool, None, version=str(rollout.to_version),
                     failed=failed)
        rollout.status = RolloutStatus.ROLLING_BACK
        return _roll_back(rollout)
    return _promote(rollout, f"{len(verdicts) - len(failed)} of {len(verdicts)} canaries "
                             "healthy")


def _promote(rollout: Rollout, why: str) -> str:
    pool = rollout.pool
    with transaction.atomic():
        Pool.objects.filter(pk=pool.pk).update(serving_version=rollout.to_version)
        _update(rollout, status=RolloutStatus.DONE, finished_at=timezone.now(), note=why)
        audit.record(None, "rollout.done", pool, None, version=str(rollout.to_version))
    rest = [d for d in idle_desktops(pool) if d.image_version_id != rollout.to_version_id]
    asked = _recompose(rest, rollout.to_version, f"rollout of {rollout.to_version}")
    return f"{why}; the pool serves {rollout.to_version}; {len(asked)} more idle recomposed"


def _roll_back(rollout: Rollout) -> str:
    """The canaries, and any idle desktop on the new version, go back to the old one once
    each is settled; desktops in use stay as they are."""
    desktops = list(Desktop.objects.filter(owner__isnull=True, pool=rollout.pool).filter(
        models.Q(pk__in=rollout.canaries) | models.Q(image_version=rollout.to_version)))
    if any(d.status not in (*IDLE_STATES, DesktopStatus.ERROR) for d in desktops):
        return "waiting for the canaries to settle before rolling back"
    back = [d for d in desktops if d.image_version_id != rollout.from_version_id]
    asked = _recompose(back, rollout.from_version, f"rollback of {rollout.to_version}")
    _update(rollout, status=RolloutStatus.ROLLED_BACK, finished_at=timezone.now())
    return f"rolled back: {len(asked)} desktop(s) back on {rollout.from_version}"


# --- where one stands --------------------------------------------------------------------------

@dataclass(frozen=True)
class Progress:
    """Where a rollout under way stands: its stage, its canaries' health, what it waits for."""

    stage: str
    ready: int  # canaries ready on the new version
    failed: int  # canaries failed or out of time (as judged, once it rolls back)
    waiting: int  # canaries not judged yet
    deadline: datetime | None  # the latest a waiting canary is judged by
    waits_for: str


def progress(rollout: Rollout, canaries: Mapping[int, Desktop], now: datetime) -> Progress:
    """``canaries``: the rollout's canary desktops by id (those deleted since are missing)."""
    trying = RolloutStatus.CANARY in (rollout.status, rollout.paused_from)
    verdicts = {pk: health(canaries.get(pk), rollout, now) for pk in rollout.canaries
                if trying}
    waiting = [canaries[pk] for pk, verdict in verdicts.items() if verdict is None]
    failed = sum(v is False for v in verdicts.values()) if trying else len(rollout.failed)
    return Progress(
        stage=_stage(rollout), ready=sum(v is True for v in verdicts.values()), failed=failed,
        waiting=len(waiting),
        deadline=max((canary_deadline(d, rollout, now) for d in waiting), default=None),
        waits_for=_waits_for(rollout, len(waiting)))


def _stage(rollout: Rollout) -> str:
    if rollout.status == RolloutStatus.PAUSED and rollout.paused_from:
        return f"paused while {RolloutStatus(rollout.paused_from).label}"
    return rollout.get_status_display()


def _waits_for(rollout: Rollout, waiting: int) -> str:
    if rollout.status == RolloutStatus.PAUSED:
        return "an administrator to resume it"
    if rollout.status == RolloutStatus.ROLLING_BACK:
        return (f"its canaries to settle, then they go back to "
                f"{rollout.from_version or 'the old version'}")
    if rollout.status != RolloutStatus.CANARY:
        return "its next step"
    if rollout.canaries_started_at is None:
        return "the next pass to choose its canaries among the idle desktops"
    if waiting:
        return (f"{waiting} of {len(rollout.canaries)} canaries to be ready on "
                f"{rollout.to_version}")
    return "its verdict at the next pass"


# --- what administrators do -------------------------------------------------------------------

def pause(user: User, rollout: Rollout) -> None:
    if rollout.status not in ACTIVE:
        raise ServiceError(f"The rollout is {rollout.get_status_display()}.")
    _update(rollout, status=RolloutStatus.PAUSED, paused_from=rollout.status)
    audit.record(user, "rollout.pause", rollout.pool, None, rollout=rollout.pk)


def resume(user: User, rollout: Rollout) -> None:
    if rollout.status != RolloutStatus.PAUSED:
        raise ServiceError("Only a paused rollout resumes.")
    _update(rollout, status=rollout.paused_from or RolloutStatus.CANARY, paused_from="")
    audit.record(user, "rollout.resume", rollout.pool, None, rollout=rollout.pk)


def roll_back(user: User, rollout: Rollout) -> None:
    """Back to the old version: the pool serves it again and the canaries go back to it
    (desktops in use stay as they are, as they always do)."""
    if rollout.status == RolloutStatus.ROLLED_BACK:
        raise ServiceError("The rollout is rolled back already.")
    with transaction.atomic():
        if rollout.status == RolloutStatus.DONE:
            Pool.objects.filter(pk=rollout.pool_id).update(serving_version=rollout.from_version)
        _update(rollout, status=RolloutStatus.ROLLING_BACK,
                note="rolled back by an administrator")
        audit.record(user, "rollout.roll_back", rollout.pool, None, rollout=rollout.pk)

"""The work behind each desktop action (``vdi.actions``), run by the one Celery task on the
desktop's host: one step per action, registered with ``@step``.

``execute`` reloads the desktop, does nothing if it is no longer in the action's transitional
state (a duplicate delivery), runs the step, and records the outcome on the desktop and its
Operation. Every step checks the world first, so running a job twice is harmless. A host that
does not answer is waited for (the task retries with backoff) for ``VDI_HOST_OUTAGE_WINDOW``
seconds before the action fails; the user reads words, operators the raw cause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from vdi import actions, causes, state, task_names
from vdi.choices import DesktopStatus, DisplayProtocol, Readiness
from vdi.hypervisor import HypervisorError, Shutdown, VncEndpoint
from vdi.models import Desktop, ImageVersion, Snapshot
from vdi.models.desktops import new_vnc_password
from vdi.services import dispatch
from vdi.worker import operations
from vdi.worker.faults import crash_point
from vdi.worker.hosts import driver_for
from vdi.worker.specs import domain_spec, has_seed, hostname, network_of, seed_path

log = logging.getLogger(__name__)

# A step may say where its desktop ends (actions with ``ends_as_step_says``: a revert).
Step = Callable[[Desktop, int], DesktopStatus | None]
STEPS: dict[str, Step] = {}
FRESH_FROM_THE_IMAGE = ("provision", "reset", "release")  # a new system disk from the image
# Where a new desktop's disks come from instead of its image, by provisioning parameter
# (a backup restored to a new desktop), registered by the modules that know how.
PROVISION_SOURCES: dict[str, Callable[[Desktop, int], None]] = {}
# What a failed step leaves to tidy, by action: it removes what the step made and ends the
# rows the step had in a "being ..." state (a half-taken snapshot's row goes), whatever the
# files say, and returns notes for operators (what it did, what it could not remove).
Cleanup = Callable[[Desktop, int], list[str]]
FAILURE_CLEANUPS: dict[str, Cleanup] = {}


def step(*names: str) -> Callable[[Step], Step]:
    """Register the worker step of the actions ``names``."""

    def register(function: Step) -> Step:
        for name in names:
            actions.get(name)  # a step belongs to a defined action
            STEPS[name] = function
        return function

    return register


class StepRefused(Exception):
    """A step that must not go on; ``words`` are for the user, ``detail`` for operators."""

    def __init__(self, words: str, detail: str) -> None:
        super().__init__(detail)
        self.words = words
        self.detail = detail


# --- steps ------------------------------------------------------------------------------------

def _ensure_domain(desktop: Desktop, operation_id: int, new: bool = False) -> None:
    """The desktop's disk and domain exist afterwards (creating whichever is missing)."""
    driver = driver_for(desktop.host)
    disk = Path(desktop.disk_path)
    if not driver.files.exists(disk) and desktop.image_version is not None:
        operations.progress(operation_id, 20, "cloning the image (linked clone)")
        crash_point("clone")
        driver.clone_disk(Path(desktop.image_version.disk_path), disk)
    elif not driver.files.exists(disk) and desktop.install_disk_gib:
        if not new:  # an installation in progress is somebody's work
            raise StepRefused(
                "The install desktop's disk is missing, so it was not started.",
                f"the install disk {disk} is missing; delete the install desktop")
        operations.progress(operation_id, 20, "creating the blank disk to install on")
        driver.files.create_blank_disk(disk, desktop.install_disk_gib)
    data = Path(desktop.data_disk_path) if desktop.data_disk_path else None
    if data is not None and not driver.files.exists(data):
        if not new:  # never paper over lost user data with an empty disk
            raise StepRefused(
                "The desktop's data disk is missing, so it was not started (it was not "
                "replaced with an empty one). Ask an administrator to restore it.",
                f"the data disk {data} is missing; restore it (see the reconciler's "
                "quarantine) or delete the desktop")
        operations.progress(operation_id, 35, "creating the user's data disk")
        crash_point("data-disk")
        assert desktop.pool is not None  # data disks are a pool's
        driver.files.create_data_disk(data, desktop.pool.data_disk_gib)
    operations.progress(operation_id, 50, "defining the virtual machine")
    crash_point("define")
    driver.define(domain_spec(desktop))


@step("provision")
def _provision(desktop: Desktop, operation_id: int) -> None:
    params = operations.params(operation_id)
    for key, fill in PROVISION_SOURCES.items():
        if params.get(key):
            operations.progress(operation_id, 15, f"restoring its disks from the {key}")
            fill(desktop, int(params[key]))
    _boot(desktop, operation_id, new=True)


@step("start")
def _start(desktop: Desktop, operation_id: int) -> None:
    _boot(desktop, operation_id)


def uses_agent(desktop: Desktop) -> bool:
    version = desktop.image_version
    return version is not None and version.readiness == Readiness.AGENT


def _give_password(desktop: Desktop) -> None:
    """A desktop made before VNC passwords, or one that changes hands, gets a new one (the
    domain's definition takes it at this boot)."""
    desktop.vnc_password = new_vnc_password()
    Desktop.objects.filter(pk=desktop.pk).update(vnc_password=desktop.vnc_password)


def prepare_host(desktop: Desktop) -> None:
    """What the guest needs on its host before it boots: its pool's network, its cloud-init
    seed (Linux desktops: the host name it takes), its serial log (created by the worker,
    so virtlogd appends to a file the worker can read)."""
    driver = driver_for(desktop.host)
    network = network_of(desktop)
    if network is not None:
        driver.ensure_network(network)
    if has_seed(desktop):
        driver.files.create_seed(seed_path(desktop), hostname(desktop), str(desktop.domain_uuid))
    driver.files.prepare_log(Path(desktop.serial_log_path))


def _boot(desktop: Desktop, operation_id: int, new: bool = False) -> None:
    if not desktop.vnc_password:
        _give_password(desktop)
    prepare_host(desktop)
    _ensure_domain(desktop, operation_id, new)
    operations.progress(operation_id, 80, "booting")
    driver = driver_for(desktop.host)
    crash_point("boot")
    driver.start(desktop.domain_name)
    crash_point("booted")
    record_endpoint(desktop.pk, driver.vnc_endpoint(desktop.domain_name))
    dispatch.send(task_names.WATCH_GUEST, (desktop.pk,), desktop.host.queue)


def record_endpoint(desktop_id: int, endpoint: VncEndpoint | None) -> None:
    """Where the console proxy finds the running guest's screen (or nowhere: it stopped).
    A guest that boots or stops has told nothing yet: its agent's facts go too."""
    Desktop.objects.filter(pk=desktop_id).update(
        vnc_host=endpoint.host if endpoint and not endpoint.socket else "",
        vnc_port=endpoint.port if endpoint and not endpoint.socket else None,
        vnc_socket=str(endpoint.socket) if endpoint and endpoint.socket else "",
        display_protocol=endpoint.display.value if endpoint else DisplayProtocol.VNC,
        guest_ready_at=None, guest_facts={})
    if endpoint is not None and endpoint.password:  # a revert brings its own definition back
        Desktop.objects.filter(pk=desktop_id).update(vnc_password=endpoint.password)


def _forget_console(desktop: Desktop) -> None:
    """The console's endpoint goes with the screen (the service closed open consoles)."""
    record_endpoint(desktop.pk, None)


@step("stop")
def _stop(desktop: Desktop, operation_id: int) -> None:
    _forget_console(desktop)
    operations.progress(operation_id, 30, "asking the guest to shut down")
    how = driver_for(desktop.host).shutdown(
        desktop.domain_name, settings.SHUTDOWN_TIMEOUT,
        agent=uses_agent(desktop))
    if how == Shutdown.AGENT:
        operations.progress(operation_id, 90, "shut down by its guest agent (it ignored ACPI)")
    elif how == Shutdown.POWER_OFF:
        operations.progress(operation_id, 90, "powered off after the shutdown deadline")


@step("restart")
def _restart(desktop: Desktop, operation_id: int) -> None:
    _stop(desktop, operation_id)
    _boot(desktop, operation_id)


@step("delete")
def _delete(desktop: Desktop, operation_id: int) -> None:
    _forget_console(desktop)
    operations.progress(operation_id, 40, "removing the virtual machine and its disks")
    doomed = [Path(desktop.disk_path), seed_path(desktop)]
    if desktop.data_disk_path:
        doomed.append(Path(desktop.data_disk_path))  # an explicit delete of the desktop
    crash_point("undefine")
    driver = driver_for(desktop.host)
    driver.undefine(desktop.domain_name, tuple(doomed))
    driver.files.remove(Path(desktop.serial_log_path))


@step("reset", "release")
def _reset(desktop: Desktop, operation_id: int) -> None:
    """A fresh system disk from the pool's newest image version; the data disk stays."""
    _forget_console(desktop)
    operations.progress(operation_id, 10, "powering off")
    crash_point("power-off")
    driver = driver_for(desktop.host)
    driver.undefine(desktop.domain_name, (Path(desktop.disk_path),))
    _discard_snapshots(desktop)
    assert desktop.pool is not None  # install desktops are not reset (their action's rule)
    version = _version_for(desktop, operation_id)
    if version is not None and version.pk != desktop.image_version_id:
        Desktop.objects.filter(pk=desktop.pk).update(image_version=version)
        desktop.image_version = version
    driver.files.remove(Path(desktop.serial_log_path))
    _give_password(desktop)  # a reset (and a release) may hand it to someone else
    _boot(desktop, operation_id)


def _version_for(desktop: Desktop, operation_id: int) -> ImageVersion | None:
    """The version a reset puts the desktop on: the one a rollout names (a canary, or its
    rollback), else what its pool serves."""
    assert desktop.pool is not None
    named = operations.params(operation_id).get("version")
    if named:
        return ImageVersion.objects.filter(pk=named, image=desktop.pool.image).first()
    return desktop.pool.version_for_new()


def _discard_snapshots(desktop: Desktop) -> None:
    """A reset gives a new system disk, so the desktop's snapshots all go: their rows, and
    their tags on the data disk (nothing would ever use them)."""
    data = Path(desktop.data_disk_path) if desktop.data_disk_path else None
    for snapshot in Snapshot.objects.filter(desktop=desktop):
        if data is not None:
            driver_for(desktop.host).snapshots.delete_offline((data,), snapshot.tag)
        snapshot.delete()


def _discard_provisioned(desktop: Desktop, operation_id: int) -> list[str]:
    """A failed provisioning leaves no domain and no disk behind."""
    made = [Path(desktop.disk_path), seed_path(desktop)]
    if desktop.data_disk_path:
        made.append(Path(desktop.data_disk_path))  # new with this desktop: no user data yet
    try:
        driver_for(desktop.host).undefine(desktop.domain_name, tuple(made))
    except (HypervisorError, OSError) as exc:
        return [f"its domain or disks may be left ({causes.explain(exc)}); the reconciler "
                "removes leftovers once they can be"]
    return []


FAILURE_CLEANUPS["provision"] = _discard_provisioned


# --- running a step ---------------------------------------------------------------------------

def execute(action: str, desktop_id: int, operation_id: int) -> str:
    """Run ``action`` on the desktop. Returns 'done', 'skipped' or 'failed'.

    Raises HypervisorError only to be retried: the error is retryable and the operation may
    try again (``operations.may_retry``).
    """
    desktop = (Desktop.objects.select_related("host", "image_version", "pool", "install_media")
               .filter(pk=desktop_id).first())
    if desktop is None:  # a late redelivery, after the desktop was deleted
        log.warning("%s of desktop %s skipped: no such desktop", action, desktop_id)
        operations.finish(operation_id, step="nothing to do: the desktop is gone")
        return "skipped"
    spec = actions.get(action)
    if desktop.status != spec.claims:
        log.info("%s of %s skipped: it is %s already", action, desktop, desktop.status)
        operations.finish(operation_id, step=f"nothing to do: desktop is {desktop.status}")
        return "skipped"
    if not operations.claim(operation_id):
        log.info("%s of %s skipped: another delivery of the same task is on it", action, desktop)
        return "skipped"
    origin = operations.origin(operation_id)
    try:
        final = STEPS[action](desktop, operation_id)
    except StepRefused as exc:
        return _failed(action, desktop, operation_id, exc.words, exc.detail, origin)
    except HypervisorError as exc:
        if exc.retryable and operations.may_retry(operation_id, exc.unreachable):
            operations.wait(operation_id, _waiting_words(desktop, exc), str(exc))
            raise
        return _failed(action, desktop, operation_id, _failure_words(spec, desktop, exc),
                       causes.explain(exc), origin)
    except Exception as exc:
        if causes.is_set_up_problem(exc):  # a permission, a missing file, a full disk
            return _failed(action, desktop, operation_id, _told(spec), causes.explain(exc),
                           origin)
        log.exception("%s of %s crashed", action, desktop)
        return _failed(action, desktop, operation_id,
                       f"{spec.failed_words} because of an internal error; an administrator "
                       "has been told the cause.", f"internal error: {exc!r}", origin)
    if action in FRESH_FROM_THE_IMAGE and not desktop.data_disk_path:
        # nobody has used it since, if nobody holds it now (a data disk is always someone's)
        Desktop.objects.filter(pk=desktop.pk, owner__isnull=True).update(pristine=True)
    state.succeed(desktop.pk, action, final if spec.ends_as_step_says else origin)
    operations.finish(operation_id)
    return "done"


def _waiting_words(desktop: Desktop, exc: HypervisorError) -> str:
    if exc.unreachable:
        return (f"Waiting for its host {desktop.host.name} to come back; it goes on by itself "
                "when the host answers.")
    return "A temporary problem on its host; trying again in a moment."


def _told(spec: actions.DesktopAction) -> str:
    """The words for a failure only an operator can fix (the failed operations on their
    dashboard show the cause)."""
    return f"{spec.failed_words}; an administrator has been told the cause."


def _failure_words(spec: actions.DesktopAction, desktop: Desktop, exc: HypervisorError) -> str:
    if exc.unreachable:
        minutes = max(1, round(settings.HOST_OUTAGE_WINDOW / 60))
        return (f"Its host {desktop.host.name} could not be reached for {minutes} min, so the "
                f"{spec.name} did not finish. Try again in a few minutes; if it keeps failing, "
                "ask an administrator to check the host.")
    if causes.is_set_up_problem(exc):  # trying again changes nothing until it is fixed
        return _told(spec)
    return (f"The {spec.name} failed on host {desktop.host.name}. Try again; if it keeps "
            "failing, an administrator can see the cause in the desktop's operations.")


def _failed(action: str, desktop: Desktop, operation_id: int, words: str, detail: str,
            origin: DesktopStatus | None = None) -> str:
    """The one place a desktop action ends failed: what its step made goes, its rows leave
    their "being ..." states, then the desktop and the Operation say so (the user's words,
    the operator's detail with what the cleanup did or left)."""
    log.warning("%s of %s failed: %s", action, desktop, detail)
    notes = _clean_up(action, desktop, operation_id)
    if notes:
        detail = f"{detail}. Cleanup: {'; '.join(notes)}"
    with transaction.atomic():  # the desktop and its Operation say so together
        state.fail(desktop.pk, action, words, detail, origin)
        operations.finish(operation_id, error=words, detail=detail)
    return "failed"


def _clean_up(action: str, desktop: Desktop, operation_id: int) -> list[str]:
    """The action's failure cleanup, if it has one; whatever it meets, the failure is still
    recorded (a cleanup ends its rows before anything else can fail)."""
    cleanup = FAILURE_CLEANUPS.get(action)
    if cleanup is None:
        return []
    try:
        return cleanup(desktop, operation_id)
    except Exception as exc:
        log.exception("the cleanup after the failed %s of %s failed", action, desktop)
        return [f"the cleanup failed: {causes.explain(exc)}"]


# Steps that live in modules of their own register themselves on import.
from vdi.worker import backups, publishing, snapshots  # noqa: E402,F401

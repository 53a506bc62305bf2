"""Layers point one way: the web tier (views, admin, console, services) never imports the
tasks, the worker, the driver or libvirt, not even inside a function; the worker has a step
for every action."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vdi import actions
from vdi.worker import jobs

ROOT = Path(__file__).resolve().parents[2]
WEB_TIER = ("vdi/views.py", "vdi/console_views.py", "vdi/urls.py", "vdi/networks.py",
            "vdi/middleware.py", "vdi/accounts.py", "vdi/state.py", "vdi/actions.py",
            "vdi/roles.py", "vdi/auth_backends.py", "vdi/oidc.py", "vdi/admin",
            "vdi/receivers", "vdi/console", "vdi/services", "vdi/models", "portal")
FORBIDDEN = ("libvirt", "vdi.tasks", "vdi.worker", "vdi.hypervisor", "vdi.images",
             "vdi.testing")


def module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path) -> set[str]:
    """Every module an import statement in ``path`` names, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def web_tier_files() -> list[Path]:
    files = []
    for entry in WEB_TIER:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [f for f in files if "migrations" not in f.parts]


def reachable(start: Path) -> dict[str, list[str]]:
    """Project modules reachable from ``start`` through imports, with one path to each."""
    seen: dict[str, list[str]] = {}
    todo = [(start, [str(start.relative_to(ROOT))])]
    while todo:
        path, trail = todo.pop()
        for name in imported_names(path):
            if name in seen or not name.startswith(("vdi", "portal", "libvirt")):
                continue
            seen[name] = [*trail, name]
            target = module_file(name)
            if target is not None and not any(name.startswith(f) for f in FORBIDDEN):
                todo.append((target, seen[name]))
    return seen


@pytest.mark.parametrize("path", web_tier_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_web_tier_imports_no_worker_driver_or_tasks(path):
    bad = {name: trail for name, trail in reachable(path).items()
           if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, "\n".join(" -> ".join(trail) for trail in bad.values())


def test_a_web_process_that_served_every_action_has_no_libvirt(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
           "VDI_HOST_NAME": f"layers-{os.getpid()}"}
    result = subprocess.run([sys.executable, "-m", "tests.web_process"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [], f"the web process loaded: {result.stdout}"


def test_every_action_has_exactly_one_worker_step():
    assert set(jobs.STEPS) == set(actions.ACTIONS)


def test_operations_and_permissions_come_from_the_actions(db):
    from django.contrib.auth.models import Permission

    from vdi.choices import ImageOperation
    from vdi.models import Operation

    kinds = dict(Operation._meta.get_field("kind").choices or [])
    assert set(kinds) == set(actions.ACTIONS) | set(ImageOperation.values)
    for action in actions.ACTIONS.values():
        app_label, codename = action.permission.split(".")
        assert Permission.objects.filter(content_type__app_label=app_label,
                                         codename=codename).exists(), action.permission


def test_adding_an_action_is_one_entry_plus_one_step(
        monkeypatch, owner, running_desktop, host, empty_queue,
        django_capture_on_commit_callbacks):
    """A new action, defined once, is offered, claimed, audited and queued by name."""
    from tests.support import drain
    from vdi import state
    from vdi.choices import DesktopStatus as S
    from vdi.models import AuditEvent
    from vdi.services.desktops import available_actions, request_action

    hibernate = actions.DesktopAction(
        "hibernate", "Hibernate", frozenset({S.RUNNING}), S.STOPPING, S.STOPPED,
        ends_consoles=True, permission="vdi.stop_desktop", admin_label="Hibernate")
    monkeypatch.setitem(actions.ACTIONS, "hibernate", hibernate)
    monkeypatch.setattr(actions, "REQUESTABLE", (*actions.REQUESTABLE, hibernate))
    monkeypatch.setattr(jobs, "STEPS", dict(jobs.STEPS))
    jobs.step("hibernate")(lambda desktop, operation_id: None)

    assert "hibernate" in state.allowed_actions(S.RUNNING)
    assert "Hibernate" in [o.label for o in available_actions(owner, running_desktop)]
    with django_capture_on_commit_callbacks(execute=True):
        operation = request_action(owner, running_desktop, "hibernate")
    running_desktop.refresh_from_db()
    assert running_desktop.status == S.STOPPING and operation.kind == "hibernate"
    assert AuditEvent.objects.filter(action="desktop.hibernate").exists()
    assert drain(host.queue) == [{"task": "vdi.desktop_action",
                                  "args": ["hibernate", running_desktop.pk, operation.pk]}]
    assert jobs.execute("hibernate", running_desktop.pk, operation.pk) == "done"
    running_desktop.refresh_from_db()
    assert running_desktop.status == S.STOPPED

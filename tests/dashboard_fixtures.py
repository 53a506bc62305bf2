"""Personas and rows for the dashboard's tests: a pool operator of the shared ``pool``, a
second pool with its own operator, and desktops, sessions and operations made to order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from vdi.choices import DesktopStatus, OperationStatus
from vdi.models import ConsoleSession, Desktop, Operation, Pool
from vdi.roles import ADMINISTRATORS, POOL_OPERATORS

_names = itertools.count(1)


def staff(username: str, role: str) -> Any:
    person = get_user_model().objects.create_user(username, password=f"{username}-password")
    person.groups.add(Group.objects.get(name=role))
    return person


@pytest.fixture
def operator(db: None, pool: Pool) -> Any:
    """Operates ``pool`` (the Pool operators role plus being named on the pool)."""
    person = staff("operator", POOL_OPERATORS)
    pool.operators.add(person)
    return person


@pytest.fixture
def administrator(db: None) -> Any:
    """In the Administrators role (not a superuser, not staff: the role is what counts)."""
    return staff("administrator", ADMINISTRATORS)


@pytest.fixture
def other_pool(pool: Pool) -> Pool:
    return Pool.objects.create(name="Other pool", image=pool.image, vcpus=2, memory_mib=512,
                               max_size=4)


@pytest.fixture
def other_operator(other_pool: Pool) -> Any:
    person = staff("other-operator", POOL_OPERATORS)
    other_pool.operators.add(person)
    return person


def desktop(pool: Pool, host: Any, status: str = DesktopStatus.RUNNING, owner: Any = None,
            **fields: Any) -> Desktop:
    n = next(_names)
    fields.setdefault("domain_name", f"vditest-dash-{n}")
    return Desktop.objects.create(
        pool=pool, host=host, image_version=pool.image.versions.first(), owner=owner,
        disk_path=f"/nonexistent/dash-{n}.qcow2", serial_log_path=f"/nonexistent/dash-{n}.log",
        vcpus=pool.vcpus, memory_mib=pool.memory_mib, status=status, vnc_port=1, **fields)


def session(on: Desktop, user: Any, **fields: Any) -> ConsoleSession:
    return ConsoleSession.objects.create(desktop=on, user=user, **fields)


def failed(on: Desktop | None, kind: str, error: str = "It broke.", **fields: Any) -> Operation:
    fields.setdefault("finished_at", timezone.now())
    return Operation.objects.create(
        kind=kind, desktop=on, target=str(on) if on else "an image", error=error,
        status=OperationStatus.FAILED, **fields)

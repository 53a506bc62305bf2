"""Personas and domain objects shared by every test."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group

from vdi.models import GoldenImage, Host, ImageVersion, Pool


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    from django.core.cache import cache

    cache.clear()


def _user(username: str, **extra: Any) -> AbstractUser:
    user: AbstractUser = get_user_model().objects.create_user(
        username=username, password=f"{username}-password", **extra
    )
    return user


@pytest.fixture
def owner(db: None) -> AbstractUser:
    return _user("owner")


@pytest.fixture
def outsider(db: None) -> AbstractUser:
    return _user("outsider")


@pytest.fixture
def admin_user(db: None) -> AbstractUser:
    return _user("boss", is_staff=True, is_superuser=True)


@pytest.fixture
def disabled_user(db: None) -> AbstractUser:
    return _user("gone", is_active=False)


@pytest.fixture
def host(db: None) -> Host:
    return Host.objects.create(
        name=settings.HOST_NAME, libvirt_uri=settings.LIBVIRT_URI, domain_type="qemu",
        storage_dir=str(settings.DISK_DIR), cpu_capacity=8, memory_capacity_mib=4096,
    )


def make_version(image_name: str, disk_path: str, **files: str) -> ImageVersion:
    image, _ = GoldenImage.objects.get_or_create(name=image_name)
    number = image.versions.count() + 1
    return ImageVersion.objects.create(
        image=image, number=number, disk_path=disk_path, size_bytes=1, virtual_size_bytes=1,
        sha256=hashlib.sha256(disk_path.encode()).hexdigest(), **files,
    )


@pytest.fixture
def image_version(db: None) -> ImageVersion:
    """A version row only: for tests that never reach a hypervisor."""
    return make_version("unit", "/nonexistent/unit/disk.qcow2")


@pytest.fixture
def members(db: None) -> Group:
    return Group.objects.create(name="members")


@pytest.fixture
def member(members: Group) -> AbstractUser:
    """Entitled to the pool through a group, not by name."""
    user = _user("member")
    user.groups.add(members)
    return user


@pytest.fixture
def pool(image_version: ImageVersion, owner: AbstractUser, members: Group) -> Pool:
    """A dedicated, non-persistent pool granted to ``owner`` and to the group ``members``."""
    pool = Pool.objects.create(name="Unit pool", image=image_version.image, vcpus=1,
                               memory_mib=256, max_per_user=3)
    pool.users.add(owner.pk)
    pool.groups.add(members)
    return pool


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run on the real settings: the suite wipes its own data folder."""
    if settings.SETTINGS_MODULE != "tests.settings":
        raise pytest.UsageError(
            f"tests need DJANGO_SETTINGS_MODULE=tests.settings, not {settings.SETTINGS_MODULE}"
        )

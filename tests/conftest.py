"""Personas and domain objects shared by every test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.management import call_command

from tests.service_fixtures import give_database_to_service_user
from tests.support import make_version, purge
from vdi.choices import DesktopStatus
from vdi.models import Desktop, Host, ImageVersion, Pool

pytest_plugins = ["tests.vm_fixtures", "tests.browser_fixtures", "tests.ldap_fixtures",
                  "tests.oidc_fixtures", "tests.dashboard_fixtures",
                  "tests.leftovers"]  # the session fails if a test leaves a process or domain


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> Iterator[None]:
    """pytest-django's test database, given to the service user that the processes the tests
    start run as (``tests.service_fixtures``)."""
    give_database_to_service_user()
    yield


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    """Each test starts with no rate-limit counts, in the cache and in the portal's own
    Redis keys (console guards)."""
    from django.core.cache import cache

    cache.clear()
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*"):
        client.delete(key)


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


def _staff(username: str, role: str) -> AbstractUser:
    """A staff account holding one role (``vdi.roles``)."""
    person = _user(username, is_staff=True)
    person.groups.add(Group.objects.get(name=role))
    return person


@pytest.fixture
def helpdesk(db: None) -> AbstractUser:
    """A member of the Helpdesk role (watches consoles, view only)."""
    from vdi.roles import HELPDESK

    return _staff("helper", HELPDESK)


@pytest.fixture
def operator(pool: Pool) -> AbstractUser:
    """A pool operator made operator of ``pool`` (by name)."""
    from vdi.roles import POOL_OPERATORS

    person = _staff("operator", POOL_OPERATORS)
    pool.operators.add(person.pk)
    return person


@pytest.fixture
def other_operator(image_version: ImageVersion) -> AbstractUser:
    """A pool operator of another pool only (through a group of that pool's operators)."""
    from vdi.roles import POOL_OPERATORS

    person = _staff("other-operator", POOL_OPERATORS)
    elsewhere = Pool.objects.create(name="Elsewhere", image=image_version.image)
    operators = Group.objects.create(name="elsewhere-ops")
    elsewhere.operator_groups.add(operators)
    person.groups.add(operators)
    return person


@pytest.fixture
def administrator(db: None) -> AbstractUser:
    """An administrator by role (the Administrators group), not a superuser."""
    from vdi.roles import ADMINISTRATORS

    return _staff("administrator", ADMINISTRATORS)


@pytest.fixture
def disabled_user(db: None) -> AbstractUser:
    return _user("gone", is_active=False)


@pytest.fixture
def host(db: None) -> Host:
    return Host.objects.create(
        name=settings.HOST_NAME, libvirt_uri=settings.LIBVIRT_URI, domain_type="qemu",
        storage_dir=str(settings.DISK_DIR), cpu_capacity=8, memory_capacity_mib=4096,
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


@pytest.fixture
def running_desktop(owner: Any, pool: Pool, host: Host,
                    image_version: ImageVersion) -> Desktop:
    """The owner's desktop, recorded as running with a VNC endpoint on port 1 (nothing there):
    a row only, for tests that never reach a hypervisor."""
    return Desktop.objects.create(
        owner=owner, pool=pool, host=host, image_version=image_version,
        domain_name="vditest-running", disk_path="/nonexistent/running.qcow2",
        serial_log_path="/nonexistent/running.log", vcpus=1, memory_mib=256,
        status=DesktopStatus.RUNNING, vnc_host="127.0.0.1", vnc_port=1, vnc_password="",
    )


@pytest.fixture
def persistent_desktop(running_desktop: Desktop) -> Desktop:
    """The owner's running desktop, in a persistent pool, with a data disk (a row only)."""
    pool = running_desktop.pool
    assert pool is not None
    pool.persistence = "persistent"
    pool.save()
    Desktop.objects.filter(pk=running_desktop.pk).update(data_disk_path="/nonexistent/d.qcow2")
    running_desktop.refresh_from_db()
    return running_desktop


@pytest.fixture
def empty_queue(host: Host) -> Iterator[None]:
    """The host's task queue in Redis is empty before and after the test."""
    purge(host.queue)
    yield
    purge(host.queue)


@pytest.fixture
def spy_driver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every attempt to reach a hypervisor (behaviour unchanged)."""
    import vdi.hypervisor.driver as driver_module

    calls: list[str] = []
    original = driver_module.get_driver

    def recording(uri: str) -> Any:
        calls.append(uri)
        return original(uri)

    monkeypatch.setattr(driver_module, "get_driver", recording)
    monkeypatch.setattr("vdi.worker.hosts.get_driver", recording)
    return calls


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run on the real settings: the suite wipes its own data folder."""
    if settings.SETTINGS_MODULE != "tests.settings":
        raise pytest.UsageError(
            f"tests need DJANGO_SETTINGS_MODULE=tests.settings, not {settings.SETTINGS_MODULE}"
        )
    # Pages name content-hashed static files: collect them (and the console's bundle) once.
    call_command("collectstatic", interactive=False, verbosity=0)

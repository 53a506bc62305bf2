"""The demo's accounts and the portal's secrets: credentials 0600 from creation in the secrets
folder, the demo admin enrolled in two-factor when it is required (or a clear word that it is
off), and password-reset mail that never reaches a log others can read."""

from __future__ import annotations

import io
import logging
import stat
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from tests.support import make_version
from vdi.roles import ADMINISTRATORS


@pytest.fixture
def secrets_dir(settings, tmp_path) -> Path:
    folder: Path = tmp_path / "secrets"
    settings.SECRETS_DIR = folder
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def setup_demo() -> str:
    out = io.StringIO()
    call_command("setup_demo", stdout=out)
    return out.getvalue()


def test_demo_credentials_are_private_from_creation(db, secrets_dir, settings, monkeypatch):
    make_version("tiny", "/nonexistent/tiny.qcow2")
    created_modes = []
    import os

    original = os.open

    def watching_open(path, flags, file_mode=0o777, *args, **kwargs):
        if str(path).endswith("demo-credentials.txt"):
            created_modes.append(file_mode)
        return original(path, flags, file_mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", watching_open)
    settings.ADMIN_REQUIRE_2FA = False
    out = setup_demo()
    credentials = secrets_dir / "demo-credentials.txt"
    assert mode(secrets_dir) == 0o700 and mode(credentials) == 0o600
    assert created_modes == [0o600], "the file never existed with wider modes"
    assert "Two-factor sign-in for administrators is off (VDI_ADMIN_REQUIRE_2FA=false)" in out
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    assert admin.groups.filter(name=ADMINISTRATORS).exists()


def test_with_two_factor_required_the_demo_admin_is_enrolled(db, secrets_dir, settings):
    from allauth.mfa.utils import is_mfa_enabled
    from django.contrib.auth import get_user_model

    make_version("tiny", "/nonexistent/tiny.qcow2")
    settings.ADMIN_REQUIRE_2FA = True
    out = setup_demo()
    admin = get_user_model().objects.get(username="admin")
    assert is_mfa_enabled(admin)
    totp_file = secrets_dir / "demo-admin-totp.txt"
    assert mode(totp_file) == 0o600 and "otpauth://totp/" in totp_file.read_text()
    assert "the demo admin is enrolled" in out
    password = (secrets_dir / "demo-credentials.txt").read_text().split("admin ")[1].split()[0]
    client = Client()
    client.post("/accounts/login/", {"login": "admin", "password": password})
    assert client.get("/").status_code == 302, "no page before the second factor"
    setup_demo()  # idempotent: the same enrolment
    assert totp_file.read_text().count("otpauth") == 1


def test_password_reset_mail_goes_to_a_private_file_not_the_log(db, owner, secrets_dir,
                                                                settings, caplog, capsys):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = secrets_dir / "mail"
    secrets_dir.mkdir(mode=0o700)
    owner.email = "owner@example.org"
    owner.save()
    with caplog.at_level(logging.DEBUG):
        Client().post("/accounts/password/reset/", {"email": "owner@example.org"})
    sent = list((secrets_dir / "mail").iterdir())
    assert len(sent) == 1 and "/accounts/password/reset/key/" in sent[0].read_text()
    printed = capsys.readouterr()
    assert "reset/key" not in caplog.text + printed.out + printed.err
    assert mode(secrets_dir) == 0o700


def test_the_demo_builds_its_debian_desktop_in_the_background(db, secrets_dir, settings):
    """The first run asks a worker to build the Debian desktop image; the pool's card shows
    how far it is while the tiny pools work; the next run does not ask again; switched off,
    it says how to build it."""
    from django.contrib.auth import get_user_model
    from django.test import TestCase

    from tests.support import drain, purge
    from vdi.images.builds import DESKTOP_IMAGE
    from vdi.models import Operation, Pool
    from vdi.services.images import IMAGES_QUEUE

    make_version("tiny", "/nonexistent/tiny.qcow2")
    settings.ADMIN_REQUIRE_2FA, settings.DEMO_DESKTOP_IMAGE = False, True
    purge(IMAGES_QUEUE)
    with TestCase.captureOnCommitCallbacks(execute=True):
        out = setup_demo()
    assert "Building the Debian desktop image in the background" in out
    pool = Pool.objects.get(name="Debian desktop")
    assert (pool.image.name, pool.network_mode) == (DESKTOP_IMAGE, "none")
    build = Operation.objects.get(kind="build_image", image=pool.image)
    assert [(m["task"], m["args"]) for m in drain(IMAGES_QUEUE)] == [
        ("vdi.build_image", [DESKTOP_IMAGE, build.pk])]

    Operation.objects.filter(pk=build.pk).update(status="running", step="installing packages",
                                                 progress=40)
    client = Client()
    client.force_login(get_user_model().objects.get(username="demo"))
    page = client.get("/").content.decode()
    assert "Being prepared: installing packages (40%)." in page
    assert "Tiny desktop" in page

    assert "Building" not in setup_demo(), "one build at a time"
    assert Operation.objects.filter(kind="build_image").count() == 1
    Operation.objects.all().delete()
    settings.DEMO_DESKTOP_IMAGE = False
    assert "manage.py build_image debian-desktop builds it" in setup_demo()
    assert not Operation.objects.exists()


def test_the_demo_nat_network_is_offered_by_the_local_host(db, secrets_dir, settings):
    """VDI_DEMO_NETWORK=nat: the Debian pool's desktops join libvirt's 'default' NAT network,
    so the local host says it offers it (else no host would take them)."""
    from vdi import networks
    from vdi.models import Host, Pool

    make_version("tiny", "/nonexistent/tiny.qcow2")
    settings.ADMIN_REQUIRE_2FA, settings.DEMO_DESKTOP_IMAGE = False, False
    settings.DEMO_NETWORK = "nat"
    setup_demo()
    setup_demo()
    host = Host.objects.get(name=settings.HOST_NAME)
    pool = Pool.objects.get(name="Debian desktop")
    assert (host.nat_networks, pool.network_mode) == ("default", "nat")
    assert networks.fits(pool, host)

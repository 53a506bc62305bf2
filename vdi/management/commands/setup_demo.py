"""Create what a first look at the portal needs: the local host, the demo pools, an admin and
a user; and start building the Debian desktop image in the background when it is missing."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from allauth.mfa.adapter import get_adapter as get_mfa_adapter
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.mfa.utils import is_mfa_enabled
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from portal.secrets import write_secret
from vdi import networks
from vdi.choices import NetworkMode
from vdi.images.builds import DESKTOP_IMAGE
from vdi.models import GoldenImage, Host, Pool
from vdi.roles import ADMINISTRATORS
from vdi.services import images
from vdi.services.hosts import ensure_local_host

DEMO_USERS = (("admin", True), ("demo", False))
DEMO_POOLS = (
    ("Tiny desktop", {
        "assignment": "automatic", "persistence": "non_persistent", "min_ready": 1,
        "max_size": 4, "idle_minutes": 30,
        "description": "A busybox shell on a Debian kernel, one kept ready: yours at once, "
                       "fresh every time.",
    }),
    ("Tiny with my files", {
        "assignment": "dedicated", "persistence": "persistent", "max_size": 4,
        "data_disk_gib": 1,
        "description": "Your own tiny desktop; files under /data survive resets.",
    }),
)
DESKTOP_POOL = ("Debian desktop", {
    "assignment": "automatic", "persistence": "non_persistent", "min_ready": 1, "max_size": 3,
    "vcpus": 2, "memory_mib": 1024, "idle_minutes": 60,
    "description": "A Debian 12 desktop (IceWM: panel, file manager, terminal), fresh every "
                   "time, one kept booted: yours at once (a new one takes about a minute to "
                   "start under software emulation).",
})


class Command(BaseCommand):
    help = "Create the local host, two demo pools and demo accounts (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        host = ensure_local_host()
        self._offer_demo_network(host)
        image = GoldenImage.objects.filter(name="tiny").first()
        if image is None:
            raise CommandError("The tiny image is missing: run manage.py build_tiny_image first")
        pools = [
            Pool.objects.get_or_create(name=name, defaults={"image": image, **settings_})[0]
            for name, settings_ in DEMO_POOLS
        ]
        pools.append(self._desktop_pool())
        credentials = self._credentials_file()
        for line in self._ensure_users(credentials).values():
            self.stdout.write(line)
        demo = get_user_model().objects.get(username="demo")
        for pool in pools:
            pool.users.add(demo)
        names = ", ".join(f"'{p.name}' ({p.image.name})" for p in pools)
        self.stdout.write(f"Host {host.name} ({host.libvirt_uri}, domain type "
                          f"{host.domain_type}); pools {names}.")
        self.stdout.write(f"Demo credentials are kept in {credentials}.")
        self.stdout.write(self._two_factor(get_user_model().objects.get(username="admin")))

    def _offer_demo_network(self, host: Host) -> None:
        """The demo's NAT choice (VDI_DEMO_NETWORK=nat) is libvirt's 'default' network on this
        machine: the local host says it offers it, so the Debian pool's desktops are placed."""
        if settings.DEMO_NETWORK != NetworkMode.NAT:
            return
        if networks.network(NetworkMode.NAT) not in networks.offered(host):
            host.nat_networks = " ".join([*networks.names(host.nat_networks),
                                          networks.DEFAULT_NAT])
            host.save(update_fields=["nat_networks"])

    def _desktop_pool(self) -> Pool:
        """The Debian desktop pool; its image is built in the background the first time (the
        portal shows the progress on the pool's card and is usable meanwhile)."""
        name, defaults = DESKTOP_POOL
        image, _ = GoldenImage.objects.get_or_create(name=DESKTOP_IMAGE)
        pool, _ = Pool.objects.get_or_create(
            name=name, defaults={"image": image, "network_mode": settings.DEMO_NETWORK,
                                 **defaults})
        if image.latest_ready_version() is not None:
            return pool
        if not settings.DEMO_DESKTOP_IMAGE:
            self.stdout.write("The Debian desktop image is not built (VDI_DEMO_DESKTOP_IMAGE "
                              "is off): manage.py build_image debian-desktop builds it.")
        elif images.in_progress(image) is None:
            images.request_build(None, DESKTOP_IMAGE)
            self.stdout.write("Building the Debian desktop image in the background (a few "
                              "minutes; the portal shows the progress on its pool).")
        return pool

    def _two_factor(self, admin: Any) -> str:
        """When two-factor is required for administrators, the demo admin is enrolled (so it
        can't be skipped); otherwise say that it is off."""
        if not settings.ADMIN_REQUIRE_2FA:
            return ("Two-factor sign-in for administrators is off "
                    "(VDI_ADMIN_REQUIRE_2FA=false); the admin can enrol at /accounts/2fa/.")
        secret_file = settings.SECRETS_DIR / "demo-admin-totp.txt"
        if not is_mfa_enabled(admin):
            secret = generate_totp_secret()
            TOTP.activate(admin, secret)
            url = get_mfa_adapter().build_totp_url(admin, secret)
            write_secret(secret_file, f"{secret}\n{url}\n")
        return (f"Two-factor sign-in is required for administrators: the demo admin is "
                f"enrolled; its TOTP secret and otpauth URL are in {secret_file}.")

    def _credentials_file(self) -> Path:
        return settings.SECRETS_DIR / "demo-credentials.txt"

    def _ensure_users(self, path: Path) -> dict[str, str]:
        known = {}
        if path.exists():
            for line in path.read_text().splitlines():
                name, _, password = line.partition(" ")
                known[name] = password
        User = get_user_model()
        lines = {}
        for username, is_admin in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            password = known.get(username) or secrets.token_urlsafe(12)
            if user is None or username not in known:
                user = user or User(username=username)
                user.is_staff = user.is_superuser = is_admin
                user.set_password(password)
                user.save()
            known[username] = password
            role = "admin" if is_admin else "user"
            if is_admin:
                user.groups.add(Group.objects.get(name=ADMINISTRATORS))
            lines[username] = f"Demo {role}: username {username}  password {password}"
        write_secret(path, "".join(f"{n} {p}\n" for n, p in known.items()))
        return lines

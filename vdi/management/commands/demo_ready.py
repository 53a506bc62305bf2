"""One line, once, when the demo's Debian desktop is booted and waiting for a claim (a claim
then connects at once, no boot): ``scripts/run`` runs this beside the services and prints the
time from its own start. Says why instead when the image's build failed."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from vdi.choices import DesktopStatus, ImageOperation, OperationStatus
from vdi.management.commands.setup_demo import DESKTOP_POOL
from vdi.models import Operation, Pool


def waiting_desktop(pool: Pool) -> bool:
    """An unclaimed desktop of the pool, booted, its session up, never used."""
    return pool.desktops.filter(owner__isnull=True, status=DesktopStatus.RUNNING,
                                pristine=True, guest_ready_at__isnull=False).exists()


def failed_build(pool: Pool) -> Operation | None:
    latest = Operation.objects.filter(image=pool.image, kind=ImageOperation.BUILD).first()
    return latest if latest is not None and latest.status == OperationStatus.FAILED else None


class Command(BaseCommand):
    help = "Wait until the demo's Debian desktop is booted and waiting for a claim; say so."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--started", type=float, default=time.time(),
                            help="when scripts/run started (seconds since the epoch)")
        parser.add_argument("--timeout", type=float, default=1800)
        parser.add_argument("--every", type=float, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        pool = Pool.objects.filter(name=DESKTOP_POOL[0]).first()
        if pool is None or not settings.DEMO_DESKTOP_IMAGE or pool.min_ready < 1:
            return
        deadline = time.monotonic() + options["timeout"]
        while time.monotonic() < deadline:
            if waiting_desktop(pool):
                self.stdout.write(
                    f"The demo's graphical desktop is booted and waiting: 'Get a desktop' on "
                    f"'{pool.name}' connects at once, no boot. Bare start to that: "
                    f"{time.time() - options['started']:.0f} s after scripts/run started.")
                return
            if (failed := failed_build(pool)) is not None:
                self.stdout.write(f"The demo's graphical desktop will not be ready: its image "
                                  f"failed to build: {failed.error}")
                return
            time.sleep(options["every"])
        self.stdout.write(f"The demo's graphical desktop was not ready within "
                          f"{options['timeout']:.0f} s; the pool's card says what it waits for.")

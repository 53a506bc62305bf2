"""Build a golden image from its recipe (Debian's packages only), or say it is up to date."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vdi.images import builds
from vdi.services.errors import ServiceError


class Command(BaseCommand):
    help = "Build an image from its recipe, unattended: " + ", ".join(builds.BUILDERS)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", choices=builds.BUILDERS)

    def handle(self, *args: Any, **options: Any) -> None:
        last = -1

        def progress(percent: int, step: str) -> None:
            nonlocal last
            if percent != last:
                self.stdout.write(f"[{percent:3d}%] {step}")
                self.stdout.flush()
                last = percent

        try:
            version = builds.build(options["name"], progress)
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"{version}: {version.virtual_size_bytes // 1024**3} GiB virtual, "
            f"{version.size_bytes // 1024**2} MiB, sha256 {version.sha256[:16]}..., "
            f"{len(version.packages.splitlines())} packages"))

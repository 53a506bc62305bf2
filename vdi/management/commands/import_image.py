"""Import a disk image (qcow2, raw, vmdk or vdi) as a new version of a golden image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vdi.choices import Profile, Readiness
from vdi.images.registry import VersionFiles, register_version
from vdi.models.images import image_name_validator
from vdi.services.errors import ServiceError


class Command(BaseCommand):
    help = ("Import a qcow2, raw, vmdk or vdi file (converted to a standalone qcow2, "
            "read-only) as the next version of an image.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help="the disk image to import")
        parser.add_argument("--name", required=True, help="image name (created if new)")
        parser.add_argument("--kernel", type=Path, help="kernel for direct boot")
        parser.add_argument("--initrd", type=Path, help="initrd for direct boot")
        parser.add_argument("--cmdline", default="", help="kernel command line")
        parser.add_argument("--description", default="")
        parser.add_argument("--profile", default=Profile.TINY, choices=Profile.values,
                            help="the virtual hardware its desktops get")
        parser.add_argument("--readiness", default=Readiness.SERIAL, choices=Readiness.values,
                            help="how a booted desktop tells it is ready")
        parser.add_argument("--session-process", default="",
                            help="with --readiness agent: the process that means the "
                            "graphical session is up (for example icewm)")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        try:
            image_name_validator(name)
        except ValidationError:
            raise CommandError(
                f"--name {name!r}: use lower-case letters, digits and dashes"
            ) from None
        path: Path = options["path"].resolve()
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if options["cmdline"] and not options["kernel"]:
            raise CommandError("--cmdline needs --kernel")
        files = VersionFiles(path, options["kernel"], options["initrd"], options["cmdline"],
                             profile=options["profile"], readiness=options["readiness"],
                             session_process=options["session_process"])
        try:
            version = register_version(
                name, files, description=options["description"],
                progress=lambda p, step: self.stdout.write(f"[{p:3d}%] {step}"))
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Imported {path} as {version} ({version.virtual_size_bytes} bytes virtual, "
            f"sha256 {version.sha256[:16]}...)"))

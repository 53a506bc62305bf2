"""Build the tiny golden image (Debian kernel + busybox root) and register it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vdi.folders import shared_folder
from vdi.images.registry import VersionFiles, register_version
from vdi.images.tiny import build_tiny_image, find_kernel
from vdi.models import GoldenImage
from vdi.services.errors import ServiceError


class Command(BaseCommand):
    help = "Build the tiny busybox golden image from a Debian kernel and register it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="tiny", help="image name (default: tiny)")
        parser.add_argument(
            "--kernel-root", action="append", type=Path, default=[],
            help="folder holding boot/vmlinuz-* and lib/modules/ (an unpacked linux-image .deb "
            "or /); may repeat; default: VDI_KERNEL_DIR, then /",
        )
        parser.add_argument("--if-missing", action="store_true",
                            help="do nothing when the image already has a ready version")

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        image = GoldenImage.objects.filter(name=name).first()
        if options["if_missing"] and image and image.latest_ready_version():
            self.stdout.write(f"Image {name} is ready ({image.latest_ready_version()}); "
                              "nothing to build.")
            return
        roots = options["kernel_root"] or [settings.KERNEL_DIR, Path("/")]
        kernel = self._find_kernel(roots)
        shared_folder(settings.IMAGE_DIR)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=settings.IMAGE_DIR))
        try:
            built = build_tiny_image(kernel, work / "tiny")
            files = VersionFiles(built.disk, built.kernel, built.initrd, built.cmdline)
            version = register_version(name, files, move=True,
                                       description="Busybox on a Debian kernel (built-in)")
        except ServiceError as exc:
            raise CommandError(str(exc)) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.stdout.write(self.style.SUCCESS(
            f"Built {version} from kernel {kernel.version}: {version.disk_path}"))

    def _find_kernel(self, roots: list[Path]) -> Any:
        for root in roots:
            try:
                return find_kernel(root)
            except FileNotFoundError:
                continue
        searched = ", ".join(str(r) for r in roots)
        raise CommandError(f"No Debian kernel with modules found in {searched}; "
                           "scripts/run and scripts/test unpack linux-image-amd64 into "
                           "VDI_KERNEL_DIR")

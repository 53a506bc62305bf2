"""Golden images the portal builds itself: the recipe's cached result becomes a version of
its image, once per build key (recipe and resolved package versions)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from vdi.choices import Profile, Readiness
from vdi.images.desktop import build as desktop
from vdi.images.registry import Progress, VersionFiles, register_version
from vdi.models import ImageVersion
from vdi.services.errors import ServiceError

DESKTOP_IMAGE = "debian-desktop"
BUILDERS = (DESKTOP_IMAGE,)


def _complete(cache: Path, key: str) -> bool:
    names = ("disk.qcow2", "vmlinuz", "initrd.img", "packages.txt", "build-key")
    return all((cache / n).is_file() for n in names) and (cache / "build-key").read_text() == key


def build(name: str, progress: Progress) -> ImageVersion:
    """The version of ``name`` built from today's recipe: an existing one, the cached build
    registered, or a new build."""
    if name not in BUILDERS:
        raise ServiceError(f"no recipe builds an image called {name!r} "
                           f"(there is: {', '.join(BUILDERS)})")
    progress(0, "resolving the package versions")
    key = desktop.build_key()
    existing = ImageVersion.objects.filter(image__name=name, build_key=key).first()
    if existing is not None:
        progress(100, f"up to date: {existing}")
        return existing
    cache = settings.IMAGE_CACHE_DIR / f"{name}-{key[:16]}"
    if _complete(cache, key):
        progress(80, f"taking the cached build {cache}")
        built = desktop.BuiltImage(cache / "disk.qcow2", cache / "vmlinuz", cache / "initrd.img",
                                   desktop.CMDLINE, (cache / "packages.txt").read_text(), key)
    else:
        try:
            built = desktop.build_desktop_image(cache, lambda p, s: progress(int(p * 0.85), s),
                                                key)
        except desktop.BuildError as exc:
            raise ServiceError(str(exc)) from None
    files = VersionFiles(built.disk, built.kernel, built.initrd, built.cmdline,
                         profile=Profile.LINUX_DESKTOP, readiness=Readiness.AGENT,
                         session_process=desktop.SESSION_PROCESS, packages=built.packages,
                         build_key=key)
    return register_version(name, files, description="Debian 12 desktop (IceWM), built from "
                            "Debian's packages", progress=lambda p, s: progress(
                                85 + p * 15 // 100, s))

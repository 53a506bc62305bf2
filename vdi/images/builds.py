"""Golden images the portal builds itself: the recipe's cached result becomes a version of
its image, once per build key (recipe and resolved package versions)."""

from __future__ import annotations

from django.conf import settings

from vdi.choices import Profile, Readiness
from vdi.images.desktop import build as desktop
from vdi.images.desktop import cache
from vdi.images.registry import Progress, VersionFiles, register_version
from vdi.models import ImageVersion
from vdi.services.errors import ServiceError

DESKTOP_IMAGE = cache.IMAGE_NAME
BUILDERS = (DESKTOP_IMAGE,)


def build(name: str, progress: Progress) -> ImageVersion:
    """The version of ``name`` built from today's recipe: an existing one, the cached build
    registered (made, or being made, by another process: ``scripts/run`` starts one early),
    or a new build."""
    if name not in BUILDERS:
        raise ServiceError(f"no recipe builds an image called {name!r} "
                           f"(there is: {', '.join(BUILDERS)})")
    progress(0, "resolving the package versions")
    key = desktop.build_key()
    existing = ImageVersion.objects.filter(image__name=name, build_key=key).first()
    if existing is not None:
        progress(100, f"up to date: {existing}")
        return existing
    try:
        built = cache.build_into_cache(settings.IMAGE_CACHE_DIR,
                                       lambda p, s: progress(int(p * 0.85), s))
    except desktop.BuildError as exc:
        raise ServiceError(str(exc)) from None
    files = VersionFiles(built.disk, built.kernel, built.initrd, built.cmdline,
                         profile=Profile.LINUX_DESKTOP, readiness=Readiness.AGENT,
                         session_process=desktop.SESSION_PROCESS, packages=built.packages,
                         build_key=key)
    return register_version(name, files, description="Debian 12 desktop (IceWM), built from "
                            "Debian's packages", progress=lambda p, s: progress(
                                85 + p * 15 // 100, s))

"""The Debian desktop image's build cache: one folder per build key under the image cache,
built by one process at a time (a lock file), its progress in a file beside it.

Whoever builds first builds; the others wait for the lock, relaying the builder's progress,
then take the result. ``scripts/run`` starts a build this way as soon as Debian's packages are
installed, beside the rest of the set-up (``python3 -m vdi.images.desktop.cache ROOT``, no
Django); the worker's build job, asked for by the demo, then finds it made or being made.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vdi.images.desktop.build import (
    CMDLINE,
    BuildError,
    BuiltImage,
    Progress,
    build_desktop_image,
    build_key,
)

IMAGE_NAME = "debian-desktop"
FILES = ("disk.qcow2", "vmlinuz", "initrd.img", "packages.txt", "build-key")


def cache_dir(root: Path, key: str) -> Path:
    return root / f"{IMAGE_NAME}-{key[:16]}"


def complete(cache: Path, key: str) -> bool:
    return all((cache / n).is_file() for n in FILES) and (cache / "build-key").read_text() == key


def cached(cache: Path, key: str) -> BuiltImage:
    return BuiltImage(cache / "disk.qcow2", cache / "vmlinuz", cache / "initrd.img", CMDLINE,
                      (cache / "packages.txt").read_text(), key)


def _progress_file(cache: Path) -> Path:
    return cache.with_name(cache.name + ".progress")


def read_progress(cache: Path) -> tuple[int, str] | None:
    """The builder's last progress (percent, words), if a build is writing it."""
    try:
        percent, _, words = _progress_file(cache).read_text().partition(" ")
        return int(percent), words.strip()
    except (OSError, ValueError):
        return None


@contextmanager
def build_lock(cache: Path, waiting: Callable[[], None], every: float = 1.0) -> Iterator[None]:
    """Hold the cache folder's build lock; ``waiting`` is called while another holds it."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    lock = cache.with_name(cache.name + ".lock")
    try:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:  # another user's lock file (a root test run's): reading will do
        descriptor = os.open(lock, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waiting()
                time.sleep(every)
        yield
    finally:
        os.close(descriptor)  # and with it the lock


def build_into_cache(root: Path, progress: Progress) -> BuiltImage:
    """Today's recipe built into its cache folder under ``root``, or taken from it: built once
    whoever asks first, the others waiting with the builder's progress."""
    key = build_key()
    cache = cache_dir(root, key)

    def relay() -> None:
        if (seen := read_progress(cache)) is not None:
            progress(seen[0], f"{seen[1]} (a build already under way)")

    with build_lock(cache, relay):
        if complete(cache, key):
            progress(100, f"taking the cached build {cache}")
            return cached(cache, key)
        noted = _progress_file(cache)

        def tee(percent: int, words: str) -> None:
            noted.write_text(f"{percent} {words}\n")
            progress(percent, words)

        try:
            return build_desktop_image(cache, tee, key)
        finally:
            noted.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the Debian desktop image into the "
                                                 "image cache (or find it there).")
    parser.add_argument("root", type=Path, help="the image cache (VDI_IMAGE_CACHE_DIR)")
    args = parser.parse_args()
    started, last = time.monotonic(), [-1]

    def show(percent: int, words: str) -> None:
        if percent != last[0]:
            last[0] = percent
            print(f"{percent:3d}% {words}", flush=True)

    try:
        built = build_into_cache(args.root, show)
    except BuildError as exc:
        print(f"The Debian desktop image could not be built: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"Debian desktop image ready in {time.monotonic() - started:.0f} s: {built.disk}",
          flush=True)


if __name__ == "__main__":
    main()

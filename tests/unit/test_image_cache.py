"""The desktop image's build cache: one builder at a time, the others wait with its progress
and take its result; a finished build is taken, not built again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from vdi.images.desktop import build, cache

KEY = "k" * 64


@pytest.fixture
def fake_build(monkeypatch):
    """The recipe's build, made instant: it notes its progress, waits to be let go, then
    writes the files a build leaves."""
    release = threading.Event()
    builds: list[Path] = []

    def building(out: Path, progress, key: str | None = None) -> build.BuiltImage:
        builds.append(out)
        progress(30, "extracting archives")
        assert release.wait(10)
        out.mkdir(parents=True, exist_ok=True)
        for name in cache.FILES:
            (out / name).write_text(KEY if name == "build-key" else name)
        progress(100, "built")
        return cache.cached(out, KEY)

    monkeypatch.setattr(cache, "build_key", lambda: KEY)
    monkeypatch.setattr(cache, "build_desktop_image", building)
    return release, builds


def test_a_second_asker_waits_with_the_builders_progress_and_takes_its_result(
        tmp_path, fake_build):
    release, builds = fake_build
    first: list[build.BuiltImage] = []
    builder = threading.Thread(target=lambda: first.append(
        cache.build_into_cache(tmp_path, lambda p, s: None)))
    builder.start()
    while not builds:
        time.sleep(0.01)
    seen: list[tuple[int, str]] = []
    waiter_done: list[build.BuiltImage] = []
    waiter = threading.Thread(target=lambda: waiter_done.append(
        cache.build_into_cache(tmp_path, lambda p, s: seen.append((p, s)))))
    waiter.start()
    time.sleep(1.5)  # the waiter looks at the builder's progress while it waits
    release.set()
    builder.join(10)
    waiter.join(10)
    assert len(builds) == 1, "built once"
    assert (30, "extracting archives (a build already under way)") in seen
    assert seen[-1][0] == 100 and "taking the cached build" in seen[-1][1]
    assert waiter_done[0].disk == first[0].disk == cache.cache_dir(tmp_path, KEY) / "disk.qcow2"
    assert cache.read_progress(cache.cache_dir(tmp_path, KEY)) is None, "no progress left"


def test_a_finished_build_is_taken_without_building(tmp_path, fake_build):
    release, builds = fake_build
    release.set()
    cache.build_into_cache(tmp_path, lambda p, s: None)
    again = cache.build_into_cache(tmp_path, lambda p, s: None)
    assert len(builds) == 1 and again.build_key == KEY

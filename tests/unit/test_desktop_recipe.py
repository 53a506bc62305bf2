"""The Debian desktop recipe without building it: its key follows the recipe and the package
versions, and a build that can't go on says why in words (no space, apt sources unreachable,
an unknown package, or the build's own last lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vdi.images.desktop import build


def test_the_build_key_follows_the_recipe_and_the_versions(monkeypatch):
    versions = "icewm 3.3.1-1"
    monkeypatch.setattr(build, "resolved_versions", lambda: versions)
    key = build.build_key()
    assert key == build.build_key() and len(key) == 64
    versions = "icewm 3.3.1-2"
    assert build.build_key() != key, "a newer package is another image"
    versions = "icewm 3.3.1-1"
    monkeypatch.setattr(build, "PACKAGES", (*build.PACKAGES, "htop"))
    assert build.build_key() != key, "another package is another image"


def test_the_resolved_versions_name_what_apt_would_install():
    versions = dict(line.split(" ", 1) for line in build.resolved_versions().splitlines())
    assert {"icewm", "qemu-guest-agent", "spice-vdagent"} <= versions.keys()


def test_not_enough_space_is_said_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "FREE_SPACE_NEEDED", 1024**5)
    with pytest.raises(build.BuildError, match=r"not enough space: \d+ MiB free"):
        build.build_desktop_image(tmp_path / "out", lambda p, s: None, "key")
    assert not (tmp_path / "out" / "disk.qcow2").exists()


def test_unreachable_apt_sources_are_named(tmp_path, monkeypatch):
    """A mirror on a loopback port nobody listens on: mmdebstrap's apt fails at once."""
    sources = tmp_path / "unreachable.sources"
    sources.write_text("Types: deb\nURIs: http://127.0.0.1:9/debian\nSuites: bookworm\n"
                       "Components: main\nSigned-By: /usr/share/keyrings/"
                       "debian-archive-keyring.gpg\n")
    monkeypatch.setattr(build, "SOURCES", sources)
    steps: list[str] = []
    with pytest.raises(build.BuildError, match="apt sources are unreachable") as refused:
        build.build_desktop_image(tmp_path / "out", lambda p, s: steps.append(s), "key")
    assert str(sources) in str(refused.value)
    assert steps and steps[0] == "starting mmdebstrap", "progress was reported"


@pytest.mark.parametrize(("log", "said"), [
    (["E: Unable to locate package no-such-thing"], "the apt sources have no package "
                                                    "no-such-thing"),
    (["mkfs.ext4: Could not allocate block in ext2 filesystem"], "no space left"),
    (["I: running apt-get update", "E: something else broke"],
     "the build failed (mmdebstrap exit 1): I: running apt-get update / E: something else"),
])
def test_a_failed_build_says_why(log, said):
    assert said in build._explain(log, 1)


def test_the_recipe_files_are_readable_by_the_builds_user_namespace(tmp_path: Path):
    stage = build._stage(tmp_path)
    for path in [stage, *stage.rglob("*")]:
        assert path.stat().st_mode & 0o005 == 0o005 if path.is_dir() else \
            path.stat().st_mode & 0o004, path

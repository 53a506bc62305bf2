"""Console recordings: on a pool that records, the proxy writes every frame it sends the
user's browser with its time, tells the page first, stops growing at the size limit, and
finishes the row when the console closes; watchers are not recorded. Only those who may
view recordings replay them; old ones are purged, files first."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from tests.console_helpers import GREETING, FakeVnc, opened, run, session_cookie, with_vnc
from tests.support import signed_in
from vdi.console.recorder import MAGIC, Recorder, read_frames
from vdi.models import Recording
from vdi.services import history

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_recording_holds_frames_and_times_until_its_limit(tmp_path: Path):
    recorder = Recorder(tmp_path / "a" / "one.vdirec", max_bytes=len(MAGIC) + 8 + 5 + 8 + 3)
    recorder.write(b"hello")
    recorder.write(b"abc")
    recorder.write(b"over the limit")
    recorder.close()
    frames = read_frames(tmp_path / "a" / "one.vdirec")
    assert [data for _, data in frames] == [b"hello", b"abc"]
    assert recorder.truncated and frames[0][0] <= frames[1][0]
    assert (tmp_path / "a" / "one.vdirec").stat().st_mode & 0o777 == 0o600


@pytest.fixture
def recorded_desktop(running_desktop, settings, tmp_path):
    settings.RECORDING_DIR = tmp_path / "recordings"
    running_desktop.pool.record_sessions = True
    running_desktop.pool.save()
    return running_desktop


def test_the_proxy_records_what_the_browser_gets_and_tells_the_page(owner, recorded_desktop):
    session = session_cookie(owner)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(owner, session, recorded_desktop)
        assert {"notice": "recorded"} in ws.notices, "told before the first frame"
        await vnc.push(b"\x00frame-one")
        assert await ws.receive_from(timeout=5) == b"\x00frame-one"
        await ws.disconnect()

    run(with_vnc, recorded_desktop, body)
    recording = Recording.objects.get()
    assert recording.ended_at is not None and recording.user == owner
    data = b"".join(frame for _, frame in read_frames(Path(recording.path)))
    assert data == GREETING + b"\x00frame-one"
    assert recording.size_bytes == Path(recording.path).stat().st_size


def test_watchers_are_not_recorded(recorded_desktop, helpdesk):
    session = session_cookie(helpdesk)

    async def body(vnc: FakeVnc) -> None:
        ws = await opened(helpdesk, session, recorded_desktop)
        assert {"notice": "view_only"} in ws.notices
        assert {"notice": "recorded"} not in ws.notices
        await ws.disconnect()

    run(with_vnc, recorded_desktop, body)
    assert not Recording.objects.exists()


def finished(recording_path: Path, owner, desktop) -> Recording:
    recording_path.parent.mkdir(parents=True, exist_ok=True)
    recording_path.write_bytes(MAGIC)
    return Recording.objects.create(desktop=desktop, desktop_name="d", user=owner,
                                    path=str(recording_path), ended_at=timezone.now())


def test_only_those_who_may_view_recordings_replay_them(owner, admin_user, running_desktop,
                                                        tmp_path, django_user_model):
    recording = finished(tmp_path / "r.vdirec", owner, running_desktop)
    page, file = (reverse(name, args=[recording.pk])
                  for name in ("recording-replay", "recording-file"))
    assert signed_in(owner).get(page).status_code == 302, "not staff: to the sign-in page"
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    assert signed_in(staff).get(file).status_code == 404
    staff.user_permissions.add(Permission.objects.get(codename="view_recording"))
    assert signed_in(staff).get(file).status_code == 200
    response = signed_in(admin_user).get(page)
    assert response.status_code == 200 and b"/static/vdi/replay." in response.content
    streamed = signed_in(admin_user).get(file)
    assert b"".join(streamed.streaming_content) == MAGIC  # type: ignore[attr-defined]


def test_old_recordings_are_purged_files_first(owner, running_desktop, tmp_path, settings):
    settings.RECORDING_DAYS = 30
    old = finished(tmp_path / "old.vdirec", owner, running_desktop)
    Recording.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(days=31))
    recent = finished(tmp_path / "recent.vdirec", owner, running_desktop)
    assert history.purge(timezone.now())["recordings"] == 1
    assert not Path(old.path).exists() and Path(recent.path).exists()
    assert list(Recording.objects.all()) == [recent]


def test_the_page_says_the_session_is_recorded(owner, recorded_desktop):
    page = signed_in(owner).get(reverse("desktop-console", args=[recorded_desktop.pk]))
    assert 'id="console-recorded" class="message warning">' in page.content.decode()

"""The SPICE console's "Test sound": its page offers it (with the Clipboard and Files panels
the VNC page has), the portal asks the desktop's worker on its host's queue, only for
someone who may use a running SPICE desktop with a session agent; the tone the worker plays
is a real, non-silent WAV."""

from __future__ import annotations

import array
import io
import math
import wave

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.support import drain, signed_in
from vdi.choices import DesktopStatus, DisplayProtocol, Readiness
from vdi.models import Desktop
from vdi.task_names import PLAY_TEST_TONE
from vdi.worker.sound import RATE, tone_wav

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spice_desktop(running_desktop):
    version = running_desktop.image_version
    version.readiness, version.session_process = Readiness.AGENT, "icewm"
    version.save()
    pool = running_desktop.pool
    pool.display_protocol = DisplayProtocol.SPICE
    pool.save()
    Desktop.objects.filter(pk=running_desktop.pk).update(display_protocol=DisplayProtocol.SPICE)
    running_desktop.refresh_from_db()
    return running_desktop


def press(user, desktop):
    return signed_in(user).post(reverse("desktop-sound-test", args=[desktop.pk]))


def test_the_spice_page_offers_the_test_tone_the_clipboard_and_files(owner, spice_desktop):
    page = signed_in(owner).get(reverse("desktop-console", args=[spice_desktop.pk]))
    html = page.content.decode()
    for part in ('id="btn-sound"', 'id="clipboard-panel"', 'id="btn-clip-send"',
                 'id="files-panel"', 'data-upload-pass="', 'data-clipboard="both"'):
        assert part in html, part
    assert 'id="btn-clip-type"' not in html, "typing keysyms is noVNC's; SPICE has its agent"
    assert page["Cache-Control"] == "no-store"


def test_the_tone_is_asked_of_the_desktops_worker(owner, spice_desktop, empty_queue):
    response = press(owner, spice_desktop)
    assert response.status_code == 202, response.content
    assert drain(spice_desktop.host.queue) == [
        {"task": PLAY_TEST_TONE, "args": [spice_desktop.pk]}]


def test_a_vnc_or_stopped_desktop_says_why_there_is_no_tone(owner, spice_desktop,
                                                            empty_queue):
    Desktop.objects.filter(pk=spice_desktop.pk).update(status=DesktopStatus.STOPPED)
    assert "start it first" in press(owner, spice_desktop).json()["error"]
    Desktop.objects.filter(pk=spice_desktop.pk).update(status=DesktopStatus.RUNNING,
                                                       display_protocol=DisplayProtocol.VNC)
    response = press(owner, spice_desktop)
    assert response.status_code == 409
    assert "only a SPICE console carries" in response.json()["error"]
    assert drain(spice_desktop.host.queue) == []


def test_someone_elses_desktop_gets_no_tone(spice_desktop, empty_queue):
    stranger = User.objects.create_user("stranger", password="x" * 16)
    assert press(stranger, spice_desktop).status_code == 404
    assert drain(spice_desktop.host.queue) == []


def test_the_tone_is_a_non_silent_wav_that_fades_in_and_out():
    with wave.open(io.BytesIO(tone_wav())) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        samples = array.array("h", wav.readframes(wav.getnframes()))
    assert len(samples) == RATE, "one second"
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    assert rms > 5000, "clearly audible"
    assert abs(samples[0]) < 100 and abs(samples[-1]) < 1000, "no click at either end"

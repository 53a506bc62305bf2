"""Files between the browser and a desktop: who may, which names, the size limit (refused
before the body is read, and counted while it is), nothing left in the spool after a refusal,
the worker asked on the desktop's host queue, and a download served to its user only."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from tests.support import drain, signed_in
from vdi.choices import Readiness
from vdi.models import AuditEvent, Desktop, FileTransfer
from vdi.services import transfers
from vdi.services.errors import ServiceError
from vdi.services.transfers import check_name
from vdi.task_names import LIST_SHARED, PULL_FILE, PUSH_FILE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def agent_desktop(running_desktop, settings, tmp_path):
    settings.SPOOL_DIR = tmp_path / "spool"
    version = running_desktop.image_version
    version.readiness, version.session_process = Readiness.AGENT, "icewm"
    version.save()
    return running_desktop


def upload(client, desktop, name: str, body: bytes):
    return client.post(f"{reverse('desktop-files-upload', args=[desktop.pk])}?name={name}",
                       body, content_type="application/octet-stream")


@pytest.mark.parametrize("name", ["", ".bashrc", "a/b", "..", "x\x01", " padded", "n" * 201])
def test_only_plain_file_names(name):
    with pytest.raises(ServiceError):
        check_name(name)


def test_a_name_that_reads_reversed_is_refused_saying_why(owner, agent_desktop, empty_queue):
    """U+202E RIGHT-TO-LEFT OVERRIDE shows photo<U+202E>gpj.exe as photoexe.jpg."""
    response = upload(signed_in(owner), agent_desktop, "photo%E2%80%AEgpj.exe", b"MZ")
    assert response.status_code == 400
    assert "holds U+202E RIGHT-TO-LEFT OVERRIDE" in response.json()["error"]
    with pytest.raises(ServiceError, match=r"holds U\+2066 LEFT-TO-RIGHT ISOLATE"):
        transfers.request_download(owner, agent_desktop, "report\u2066.pdf")
    with pytest.raises(ServiceError, match=r"holds U\+0085 \(a next-line break\)"):
        check_name("two\x85lines.txt")
    assert not FileTransfer.objects.exists() and drain(agent_desktop.host.queue) == []


def test_a_guest_file_whose_name_reads_reversed_is_listed_as_it_is(owner, agent_desktop):
    """The desktop's Shared folder holds photo<U+202E>gpj.exe: the Files panel lists it with
    the code point written out, and says why it cannot be downloaded."""
    Desktop.objects.filter(pk=agent_desktop.pk).update(guest_facts={"shared": [
        {"name": "photo\u202egpj.exe", "size": 2}, {"name": "report.pdf", "size": 3}]})
    listed = signed_in(owner).get(f"/desktops/{agent_desktop.pk}/files/").json()["shared"]
    assert [(f["shown"], f["refused"]) for f in listed] == [
        ("photo⟨U+202E⟩gpj.exe",
         "its name holds U+202E RIGHT-TO-LEFT OVERRIDE: rename it in the desktop"),
        ("report.pdf", "")]


def test_an_upload_is_spooled_and_sent_to_the_desktops_worker(owner, agent_desktop,
                                                              empty_queue):
    response = upload(signed_in(owner), agent_desktop, "notes%20%C3%A9t%C3%A9.txt", b"hello")
    assert response.status_code == 202
    transfer = FileTransfer.objects.get()
    assert (transfer.name, transfer.size_bytes, transfer.status) == ("notes été.txt", 5,
                                                                     "pending")
    assert Path(transfer.spool_path).read_bytes() == b"hello"
    assert drain(agent_desktop.host.queue) == [{"task": PUSH_FILE, "args": [transfer.pk]}]
    assert AuditEvent.objects.get(action="file.upload").details == {
        "name": "notes été.txt", "size": 5}


def test_too_big_or_badly_named_uploads_leave_nothing(owner, agent_desktop, settings,
                                                      empty_queue):
    settings.FILE_TRANSFER_MAX_BYTES = 4
    client = signed_in(owner)
    assert "at most 4 bytes" in upload(client, agent_desktop, "big.bin", b"12345").json()["error"]
    assert upload(client, agent_desktop, "..", b"1").status_code == 400
    with pytest.raises(ServiceError, match="passed 4 bytes"):  # a length that lied
        transfers.upload(owner, agent_desktop, "lied.bin", iter([b"123", b"45"]), None)
    assert not FileTransfer.objects.exists()
    assert list(Path(settings.SPOOL_DIR).iterdir()) == [], "the partial file is gone"
    assert drain(agent_desktop.host.queue) == []


def test_a_spool_the_portal_cant_write_says_so_in_words(owner, agent_desktop, settings,
                                                       tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.SPOOL_DIR = blocker / "spool"
    answer = upload(signed_in(owner), agent_desktop, "notes.txt", b"hello")
    assert answer.status_code == 400
    assert answer.json()["error"] == transfers.NOT_STORED, "the user's words, no path"
    assert f"a part of {blocker / 'spool'} is not a folder" in caplog.text, "the operators' cause"
    assert not FileTransfer.objects.exists()


def test_watchers_outsiders_and_agentless_desktops_move_no_files(
        owner, outsider, helpdesk, agent_desktop, empty_queue):
    for who in (outsider, helpdesk):
        assert upload(signed_in(who), agent_desktop, "a.txt", b"x").status_code == 404
    version = agent_desktop.image_version
    version.readiness = Readiness.SERIAL
    version.save()
    answer = upload(signed_in(owner), agent_desktop, "a.txt", b"x")
    assert answer.status_code == 400 and "no guest agent" in answer.json()["error"]
    assert not FileTransfer.objects.exists()


def test_listing_and_fetching_ask_the_worker(owner, agent_desktop, empty_queue):
    client = signed_in(owner)
    assert client.post(reverse("desktop-files-list", args=[agent_desktop.pk])).status_code == 202
    fetch = client.post(reverse("desktop-files-fetch", args=[agent_desktop.pk]),
                        {"name": "report.pdf"})
    assert fetch.status_code == 202
    assert drain(agent_desktop.host.queue) == [
        {"task": LIST_SHARED, "args": [agent_desktop.pk]},
        {"task": PULL_FILE, "args": [fetch.json()["id"]]}]


def test_a_finished_download_is_its_users_only(owner, outsider, agent_desktop, tmp_path):
    spooled = tmp_path / "out-1"
    spooled.write_bytes(b"report")
    transfer = FileTransfer.objects.create(
        desktop=agent_desktop, user=owner, direction="out", name="report.pdf",
        status="done", size_bytes=6, spool_path=str(spooled))
    url = reverse("file-download", args=[transfer.pk])
    assert signed_in(outsider).get(url).status_code == 404
    response = signed_in(owner).get(url)
    assert b"".join(response.streaming_content) == b"report"  # type: ignore[attr-defined]
    assert 'filename="report.pdf"' in response["Content-Disposition"]
    status = signed_in(owner).get(reverse("desktop-files", args=[agent_desktop.pk])).json()
    assert status["transfers"][0]["url"] == url


def test_spooled_downloads_go_after_a_day(owner, agent_desktop, tmp_path):
    from datetime import timedelta

    from django.utils import timezone

    from vdi.services import history

    spooled = tmp_path / "out-2"
    spooled.write_bytes(b"old")
    FileTransfer.objects.create(
        desktop=agent_desktop, user=owner, direction="out", name="old.txt", status="done",
        spool_path=str(spooled), finished_at=timezone.now() - timedelta(days=2))
    history.purge(timezone.now())
    assert not spooled.exists() and FileTransfer.objects.get().spool_path == ""

"""Request bodies under the portal's real daphne (``portal.daphne_server``, started as
scripts/run starts it): a body over its page's limit is answered 413 before it is stored,
whether its length is declared (not a byte stored) or not (chunked: never more than the limit
stored), and bodies under the limit still sign in and upload.

What daphne stores is watched where Twisted stores it: its temporary files are unlinked at
once (``tempfile.TemporaryFile``), so they are counted among the daphne process's open file
descriptors that point to deleted files in the TMPDIR it was given."""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from portal.limits import upload_pass
from tests.console_helpers import session_cookie
from tests.support import as_the_service_wrote_it
from vdi.choices import Readiness
from vdi.models import Desktop, FileTransfer
from vdi.testing.processes import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

KIB, MIB = 1024, 1024 * 1024
REQUEST_MAX = 256 * KIB  # VDI_REQUEST_MAX_BYTES of the daphne under test
FILE_MAX = 512 * KIB  # VDI_FILE_TRANSFER_MAX_BYTES
MEDIA_MAX = MIB  # VDI_MEDIA_UPLOAD_MAX_BYTES


class Portal:
    """The daphne under test and the folder it keeps its temporary files in."""

    def __init__(self, server: ServerProcess, tmp: Path) -> None:
        self.server, self.tmp = server, tmp

    def stored(self) -> int:
        """Bytes daphne holds in temporary files now."""
        assert self.server.process is not None
        total = 0
        for fd in Path(f"/proc/{self.server.process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
                if target.startswith(f"{self.tmp}/") and target.endswith(" (deleted)"):
                    total += fd.stat().st_size
            except OSError:
                continue  # closed meanwhile
        return total

    @contextmanager
    def watching(self) -> Iterator[list[int]]:
        """Samples ``stored`` every millisecond while the block runs; yields the samples."""
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(self.stored())
                time.sleep(0.001)

        thread = threading.Thread(target=sample)
        thread.start()
        try:
            yield samples
        finally:
            done.set()
            thread.join()

    @contextmanager
    def request(self, target: str, headers: dict[str, str]) -> Iterator[socket.socket]:
        """A POST's request line and headers sent; the body is the caller's to send."""
        head = "".join(f"{name}: {value}\r\n" for name, value in
                       {"Host": "127.0.0.1", **headers}.items())
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as conn:
            conn.sendall(f"POST {target} HTTP/1.1\r\n{head}\r\n".encode())
            yield conn


@pytest.fixture(scope="module")
def portal(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    tmp = Path(settings.DATA_DIR) / "run" / f"tmp-bodies-{os.getpid()}"
    tmp.mkdir(mode=0o700)
    as_the_service_wrote_it(tmp)
    server = ServerProcess(tmp_path_factory.mktemp("bodies") / "daphne.log", env={
        "TMPDIR": str(tmp), "VDI_REQUEST_MAX_BYTES": str(REQUEST_MAX),
        "VDI_FILE_TRANSFER_MAX_BYTES": str(FILE_MAX),
        "VDI_MEDIA_UPLOAD_MAX_BYTES": str(MEDIA_MAX)})
    server.start()
    try:
        yield Portal(server, tmp)
    finally:
        server.stop()
        shutil.rmtree(tmp)


def answer(conn: socket.socket) -> tuple[bytes, dict[str, Any]]:
    """The status line and JSON body of an answer that ends with the connection."""
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)


def answered(conn: socket.socket) -> bool:
    return bool(select.select([conn], [], [], 0)[0])


ANNOUNCED = 96 * MIB


@pytest.mark.parametrize(("target", "error"), [
    ("/accounts/login/", f"the request body is {ANNOUNCED} bytes; the portal takes at most "
                         f"{REQUEST_MAX} bytes (VDI_REQUEST_MAX_BYTES)"),
    ("/desktops/1/files/upload/?name=big.bin&pass={desktop-files-upload}",
     f"the file is {ANNOUNCED} bytes; the portal takes at most {FILE_MAX} bytes "
     "(VDI_FILE_TRANSFER_MAX_BYTES)"),
    ("/admin/vdi/installmedia/upload/?name=big&pass={admin:vdi_installmedia_upload}",
     f"the ISO is {ANNOUNCED} bytes; the portal takes at most {MEDIA_MAX} bytes "
     "(VDI_MEDIA_UPLOAD_MAX_BYTES): add a bigger ISO by its path instead"),
    ("/admin/vdi/installmedia/upload/?name=big",  # no page's pass: a page's limit
     f"the upload is {ANNOUNCED} bytes; the portal takes at most {REQUEST_MAX} bytes "
     "(VDI_REQUEST_MAX_BYTES): reload the page and send it again (a bigger upload needs the "
     "pass of a page you are signed in on)"),
])
def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_stored(
        portal: Portal, target: str, error: str) -> None:
    """Anonymous, 96 MiB announced: the 413 comes after the headers (no 100 Continue first),
    and what the client sends anyway is dropped. An upload's own limit needs its page's pass
    (here a signed-in user's, as the page gives it)."""
    target = re.sub(r"\{([^}]+)\}", lambda m: upload_pass(1, m.group(1)), target)
    with portal.watching() as samples, portal.request(target, {
            "Content-Length": str(ANNOUNCED), "Expect": "100-continue",
            "Content-Type": "application/octet-stream"}) as conn:
        assert select.select([conn], [], [], 10)[0], "no answer before the body"
        conn.sendall(b"x" * MIB)
        status, body = answer(conn)
    assert (status, body) == (b"HTTP/1.1 413 Content Too Large", {"error": error})
    assert samples and max(samples) == 0, "daphne stored part of the body"
    assert f'"POST {target.split("?")[0]}" 413' in portal.server.log.read_text()


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(portal: Portal) -> None:
    """No length announced: daphne stores the body as it comes, up to the limit, then drops
    it and answers while the client is still sending."""
    piece, sent = b"x" * (16 * KIB), 0
    with portal.watching() as samples, portal.request(
            "/accounts/login/", {"Transfer-Encoding": "chunked"}) as conn:
        while sent < 16 * REQUEST_MAX and not answered(conn):
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)
            time.sleep(0.002)
        status, body = answer(conn)
    assert status == b"HTTP/1.1 413 Content Too Large"
    assert body["error"] == (f"the request body passed {REQUEST_MAX} bytes; the portal takes "
                             f"at most {REQUEST_MAX} bytes (VDI_REQUEST_MAX_BYTES)")
    assert sent < 16 * REQUEST_MAX, "answered only once the client had sent it all"
    assert 0 < max(samples) <= REQUEST_MAX, "stored as it came, never more than the limit"
    assert samples[-1] == 0, "the stored part was dropped"


def test_a_sign_in_under_the_limit_still_signs_in(portal: Portal, owner: Any) -> None:
    origin = portal.server.origin
    with requests.Session() as browser:
        page = browser.get(f"{origin}/accounts/login/", timeout=10)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, page.text[:500]
        signed = browser.post(f"{origin}/accounts/login/", timeout=10, allow_redirects=False,
                              headers={"Referer": f"{origin}/accounts/login/"},
                              data={"csrfmiddlewaretoken": match.group(1), "login": "owner",
                                    "password": "owner-password"})
        assert signed.status_code == 302, signed.text[:500]
        home = browser.get(f"{origin}/", timeout=10, allow_redirects=False)
    assert home.status_code == 200, "signed in: the desktops page, not the sign-in page"


@pytest.fixture
def agent_desktop(running_desktop: Desktop, empty_queue: None) -> Desktop:
    version = running_desktop.image_version
    assert version is not None
    version.readiness, version.session_process = Readiness.AGENT, "icewm"
    version.save()
    return running_desktop


def test_a_file_under_the_limit_is_uploaded(portal: Portal, owner: Any,
                                            agent_desktop: Desktop) -> None:
    """300 KiB with the console page's pass (more than a page's 256 KiB), past Twisted's
    100 kB in memory: daphne keeps it in a temporary file (seen while the body is half sent,
    so the other tests' zero is not blindness), and the view spools it whole."""
    data = secrets.token_bytes(300 * KIB)
    token = secrets.token_hex(16)
    with portal.request(f"/desktops/{agent_desktop.pk}/files/upload/?name=notes.bin&pass="
                        f"{upload_pass(owner.pk, 'desktop-files-upload')}", {
            "Cookie": f"sessionid={session_cookie(owner)}; csrftoken={token}",
            "X-CSRFToken": token, "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)), "Connection": "close"}) as conn:
        conn.sendall(data[:200 * KIB])
        deadline = time.monotonic() + 10
        while portal.stored() < 200 * KIB and time.monotonic() < deadline:
            time.sleep(0.01)
        assert portal.stored() == 200 * KIB, "the half sent is in daphne's temporary file"
        conn.sendall(data[200 * KIB:])
        status, body = answer(conn)
    assert status == b"HTTP/1.1 202 Accepted", body
    transfer = FileTransfer.objects.get()
    spool = Path(transfer.spool_path)
    try:
        assert (transfer.name, transfer.size_bytes) == ("notes.bin", len(data))
        assert spool.read_bytes() == data
    finally:
        spool.unlink()
    assert portal.stored() == 0

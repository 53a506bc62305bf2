"""The portal as ``scripts/run`` starts it on a fresh data folder (the service user, umask 077,
the folders the set-up makes, the host's domain type left to ``auto``), used over HTTP as a
person would, right away: a claim reaches ``running`` with no failed operation, whether KVM
works on this machine or not; then a live snapshot of the running persistent desktop and its
revert, a backup and its restore, and a dashboard thumbnail, each once; a warm desktop
claimed in Chromium, its screen on the console, in a recorded pool whose recording an
administrator replays; and files both ways with the demo's graphical Debian desktop.

It holds what was broken on a fresh machine while the suite, running the services as root in
a setup of its own, passed: the KVM probe's serial log, folders nobody made, a backup folder
QEMU could not enter, a running disk the worker could not read."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from tests.browser_fixtures import canvas_shows_something, sign_in
from tests.guest import in_session
from vdi.folders import FOLDERS
from vdi.hypervisor import get_driver
from vdi.testing.processes import ROOT, free_port, proc_stats, wait_for

pytestmark = pytest.mark.vm
DATA = Path("/var/lib/vdi-portal-productway")
PREFIX = "vdiway"
SERVICE_USER = "vdi-portal"
SHARED = ("libvirtd", "virtlogd", "virtlockd", "redis-server")


@dataclass
class Portal:
    process: subprocess.Popen[bytes]
    log: Path
    origin: str

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read its database (SQLite in its secrets folder) as it is now."""
        with contextlib.closing(sqlite3.connect(DATA / "secrets" / "portal.sqlite3")) as db:
            return db.execute(sql, args).fetchall()

    def value(self, sql: str, *args: Any) -> Any:
        found = self.rows(sql, *args)
        return found[0][0] if found else None

    def change(self, sql: str) -> None:
        """Change its database as the service user would (files SQLite makes stay its)."""
        script = ("import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
                  "db.execute(sys.argv[2]); db.commit()")
        subprocess.run(["runuser", "-u", SERVICE_USER, "--", sys.executable, "-c", script,
                        str(DATA / "secrets" / "portal.sqlite3"), sql], check=True)

    def failures(self) -> list[tuple[Any, ...]]:
        return self.rows("select kind, target, error, detail from vdi_operation "
                         "where status = 'failed'")


def of_this_run(pid: int) -> bool:
    try:
        return f"VDI_DATA_DIR={DATA}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def leftovers() -> list[int]:
    return [pid for pid, fields in proc_stats()
            if pid != os.getpid() and fields[0] != "Z" and of_this_run(pid)
            and Path(f"/proc/{pid}/comm").read_text().strip() not in SHARED]


def remove_domains() -> None:
    driver = get_driver(settings.LIBVIRT_URI)
    for info in driver.list_domains():
        if info.name.startswith(PREFIX + "-"):
            driver.undefine(info.name)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    shutil.rmtree(DATA, ignore_errors=True)
    remove_domains()
    port = free_port()
    log = tmp_path_factory.mktemp("productway") / "run.log"
    env = {key: value for key, value in os.environ.items()
           if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL") and not key.startswith("VDI_")}
    env.update(VDI_DATA_DIR=str(DATA), VDI_KERNEL_DIR=str(settings.KERNEL_DIR),
               VDI_PORT=str(port), VDI_HOST_NAME="productway", VDI_DOMAIN_PREFIX=PREFIX,
               VDI_REDIS_KEY_PREFIX=PREFIX, VDI_DOMAIN_TYPE="auto",
               VDI_IMAGE_CACHE_DIR=str(settings.IMAGE_CACHE_DIR),  # the desktop tier's build
               VDI_THUMBNAIL_INTERVAL="5", VDI_SPICE_GATEWAY_LISTEN=f"127.0.0.1:{free_port()}")
    process = subprocess.Popen(["bash", str(ROOT / "scripts" / "run")], cwd=ROOT, env=env,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for(lambda: b"Portal on http" in log.read_bytes() or process.poll() is not None,
                 400, "scripts/run to start the portal")
        assert process.poll() is None, log.read_text()[-3000:]
        yield Portal(process, log, f"http://127.0.0.1:{port}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
        for pid in leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        remove_domains()
        shutil.rmtree(DATA, ignore_errors=True)


def demo_password(username: str) -> str:
    """The password scripts/run printed for a demo account (kept in its secrets folder)."""
    credentials = dict(line.split(" ", 1) for line in
                       (DATA / "secrets" / "demo-credentials.txt").read_text().splitlines())
    return credentials[username]


def signed_in(portal: Portal, username: str) -> requests.Session:
    """A browser's session: the sign-in form, its CSRF token, the demo's printed password."""
    session = requests.Session()
    session.get(f"{portal.origin}/accounts/login/", timeout=30)
    answer = session.post(f"{portal.origin}/accounts/login/", timeout=30, data={
        "login": username, "password": demo_password(username),
        "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{portal.origin}/accounts/login/"})
    assert answer.url.rstrip("/") == portal.origin, f"{username} could not sign in"
    return session


def post(session: requests.Session, portal: Portal, path: str, **data: str) -> None:
    """Press a page's button: the page it leads back to must not say it was refused."""
    answer = session.post(f"{portal.origin}{path}", timeout=30,
                          data={"csrfmiddlewaretoken": session.cookies["csrftoken"], **data},
                          headers={"Referer": f"{portal.origin}/"})
    assert answer.history and answer.history[0].status_code == 302, (path, answer.status_code)
    refused = re.findall(r'<p class="message error"[^>]*>([^<]*)<', answer.text)
    assert not refused, (path, refused)


def operation_ended(portal: Portal, kind: str, after: int = 0) -> str:
    """Wait for the newest ``kind`` operation (after id ``after``) to end; its status."""
    def ended() -> str | None:
        row = portal.rows("select status from vdi_operation where kind = ? and id > ? "
                          "order by id desc limit 1", kind, after)
        return row[0][0] if row and row[0][0] in ("succeeded", "failed") else None
    return str(wait_for(ended, 300, f"the {kind} to end"))


def newest_operation(portal: Portal) -> int:
    return int(portal.value("select coalesce(max(id), 0) from vdi_operation"))


def pressed(session: requests.Session, portal: Portal, kind: str, path: str,
            **data: str) -> str:
    """Press the button at ``path`` and wait for the ``kind`` operation it asks for: how it
    ended."""
    mark = newest_operation(portal)
    post(session, portal, path, **data)
    return operation_ended(portal, kind, mark)


def test_a_fresh_portal_serves_a_persistent_desktop_and_its_features_as_the_service_user(
        portal):
    text = portal.log.read_text()
    decided = re.search(r"Host productway: domain type '(kvm|qemu)' \((.+)\)", text)
    assert decided, "scripts/run says which domain type the host got, and why"
    assert "Set-up stages: packages" in text, "and how long each stage of its set-up took"
    service = pwd.getpwnam(SERVICE_USER)
    told = {"VDI_DATA_DIR": str(DATA), "VDI_KERNEL_DIR": str(settings.KERNEL_DIR),
            "VDI_IMAGE_CACHE_DIR": str(settings.IMAGE_CACHE_DIR)}
    for folder in FOLDERS:  # made at set-up, as the one table says (the shared ones aside)
        path = folder.path(told)
        if not path.is_relative_to(DATA):
            continue
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == folder.mode, path
        assert (info.st_uid == service.pw_uid) == folder.service_owned, path

    # a claim right away, on the persistent pool (a data disk), as the demo user
    demo = signed_in(portal, "demo")
    pool = portal.value("select id from vdi_pool where name = 'Tiny with my files'")
    post(demo, portal, f"/pools/{pool}/claim/")
    desktop = portal.value("select id from vdi_desktop where pool_id = ? and owner_id = "
                           "(select id from auth_user where username = 'demo')", pool)
    wait_for(lambda: portal.value("select guest_ready_at from vdi_desktop where id = ?",
                                  desktop) or portal.failures(), 300, "the desktop to be ready")
    assert portal.failures() == [], "no operation failed, the KVM probe's included"
    assert portal.value("select status from vdi_desktop where id = ?", desktop) == "running"
    assert portal.value("select resolved_domain_type from vdi_host where name = 'productway'") \
        == decided.group(1)

    # the dashboard's thumbnail of its screen, written by the worker, served by the web (while
    # it runs: the worker prunes the pictures of stopped desktops)
    domain = portal.value("select domain_name from vdi_desktop where id = ?", desktop)
    wait_for(lambda: (DATA / "thumbnails" / f"{domain}.jpg").exists(), 120,
             "the worker's thumbnail of the screen")
    admin = signed_in(portal, "admin")
    picture = admin.get(f"{portal.origin}/dashboard/desktops/{desktop}/thumbnail.jpg",
                        timeout=30)
    assert picture.status_code == 200 and picture.content[:3] == b"\xff\xd8\xff", \
        "a JPEG, read by daphne from the worker's folder"

    # a live snapshot of the running persistent desktop, and back to it
    assert pressed(demo, portal, "snapshot", f"/desktops/{desktop}/snapshots/take/",
                   name="live one", with_data_disk="on") == "succeeded", portal.failures()
    snapshot = portal.value("select id from vdi_snapshot where desktop_id = ? and "
                            "status = 'ready'", desktop)
    assert snapshot, "the snapshot is ready, not left 'being taken'"
    assert pressed(demo, portal, "revert", f"/snapshots/{snapshot}/revert/",
                   confirm="revert") == "succeeded", portal.failures()

    # a backup, into a folder QEMU enters, and a restore of it
    assert pressed(demo, portal, "backup", f"/desktops/{desktop}/backups/now/") == \
        "succeeded", portal.failures()
    backup = portal.value("select id from vdi_backup where desktop_id = ? and "
                          "status = 'ready'", desktop)
    assert backup, "the backup is verified"
    assert pressed(demo, portal, "restore", f"/backups/{backup}/restore/") == "succeeded", \
        portal.failures()
    wait_for(lambda: portal.value("select status from vdi_desktop where id = ?", desktop)
             in ("running", "stopped", "error"), 300, "the restored desktop to settle")
    assert portal.failures() == []


@pytest.mark.browser
def test_a_warm_desktop_claimed_in_chromium_shows_its_screen_at_once(portal, browser):
    """The 'Tiny desktop' pool keeps one booted: a claim in the browser, Connect, and the
    console draws the guest's screen through the portal's daphne (the service user's)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    sign_in(page, portal, "demo", demo_password("demo"))
    card = page.locator("article.pool", has=page.locator("h3", has_text=re.compile(
        "^Tiny desktop$")))

    def warm() -> bool:
        page.reload()
        return "booted and waiting" in card.inner_text()

    wait_for(warm, 300, "the pool's warm desktop (its card says so)", every=2)
    portal.change("update vdi_pool set record_sessions = 1 where name = 'Tiny desktop'")
    card.locator("button", has_text="Get a desktop").click()
    page.wait_for_url(re.compile(r"/desktops/\d+/console/$"))  # a warm claim: its console
    page.wait_for_selector("#console-state:text-is('Connected')", timeout=30_000)
    assert page.is_visible("#console-recorded"), "the user is told it is recorded"
    wait_for(lambda: canvas_shows_something(page), 30, "the guest's screen on the canvas")
    page.close()  # the console closes: daphne (the service user) finishes the recording

    recording = wait_for(lambda: portal.value(
        "select id from vdi_recording where ended_at is not null and size_bytes > 1000"), 60,
        "the recording to be finished")
    admin = browser.new_page(viewport={"width": 1024, "height": 768})
    sign_in(admin, portal, "admin", demo_password("admin"))
    admin.goto(f"{portal.origin}/recordings/{recording}/")
    admin.wait_for_selector("#replay[data-state=playing]", timeout=30_000)
    admin.evaluate("window.vdiReplay.seekTo(window.vdiReplay.duration)")
    admin.wait_for_selector("#replay[data-state=finished]", timeout=30_000)
    wait_for(lambda: canvas_shows_something(admin), 30, "the replayed screen")


def test_files_go_both_ways_with_the_demos_graphical_desktop(portal):
    """The demo's Debian desktop (its image taken from the build scripts/run started): a file
    sent from the browser lands in its Downloads, one it puts in its Shared folder comes back,
    through the worker's spool (the service user's)."""
    demo = signed_in(portal, "demo")
    pool = portal.value("select id from vdi_pool where name = 'Debian desktop'")
    post(demo, portal, f"/pools/{pool}/claim/")
    desktop, domain = portal.rows(
        "select id, domain_name from vdi_desktop where pool_id = ? and owner_id = "
        "(select id from auth_user where username = 'demo')", pool)[0]
    wait_for(lambda: portal.value("select guest_ready_at from vdi_desktop where id = ?",
                                  desktop) or portal.failures(), 600, "its session")
    assert portal.failures() == []
    console = demo.get(f"{portal.origin}/desktops/{desktop}/console/", timeout=30).text
    upload_pass = re.search(r'data-upload-pass="([^"]+)"', console)
    assert upload_pass, "the console page gives its uploads a pass"
    sent = secrets.token_bytes(300_000)
    answer = demo.post(f"{portal.origin}/desktops/{desktop}/files/upload/", data=sent,
                       params={"name": "from the browser.bin", "pass": upload_pass.group(1)},
                       headers={"X-CSRFToken": str(demo.cookies["csrftoken"]),
                                "Content-Type": "application/octet-stream",
                                "Referer": f"{portal.origin}/"}, timeout=60)
    assert answer.status_code == 202, answer.text
    assert transfer_ended(portal, answer.json()["id"]) == ("done", "")
    arrived = in_session(domain, 'sha256sum < "$HOME/Downloads/from the browser.bin"')
    assert arrived.split()[0] == hashlib.sha256(sent).hexdigest()

    made = in_session(domain, 'mkdir -p "$HOME/Shared"; head -c 200000 /dev/urandom '
                              '> "$HOME/Shared/report.bin"; sha256sum < "$HOME/Shared/report.bin"')
    fetch = demo.post(f"{portal.origin}/desktops/{desktop}/files/fetch/", timeout=30,
                      data={"name": "report.bin"},
                      headers={"X-CSRFToken": str(demo.cookies["csrftoken"]),
                               "Referer": f"{portal.origin}/"})
    assert fetch.status_code == 202, fetch.text
    assert transfer_ended(portal, fetch.json()["id"]) == ("done", "")
    saved = demo.get(f"{portal.origin}/files/{fetch.json()['id']}/", timeout=30)
    assert saved.status_code == 200 and hashlib.sha256(saved.content).hexdigest() == \
        made.split()[0]


def transfer_ended(portal: Portal, transfer: int) -> tuple[str, str]:
    """How a file transfer ended: its status and error."""
    def ended() -> tuple[str, str] | None:
        row = portal.rows("select status, error from vdi_filetransfer where id = ?", transfer)
        return (str(row[0][0]), str(row[0][1])) if row and row[0][0] != "pending" else None
    found: tuple[str, str] = wait_for(ended, 120, "the file transfer to end")
    return found

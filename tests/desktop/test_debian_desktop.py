"""Real desktops: the Debian desktop image built from Debian's packages, claimed on a test host
that lives in namespaces of its own (so its guests may have a network), with one booted
desktop shared by every check that can share it: the agent answers and reports an address on
the pool's network, a graphical session is on screen in Chromium through the portal (pixels,
and the session's process running for the desktop's user, as the agent says), and a stop
goes through the agent when the guest ignores ACPI. The Windows profile shows its firmware
through the console."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from PIL import Image

from tests.browser_fixtures import sign_in
from tests.support import wait_for, wait_gone, wait_status
from tests.vm_fixtures import hvhost, hvhost_base, remove_test_domains
from vdi.choices import DesktopStatus
from vdi.hypervisor import get_driver
from vdi.hypervisor.network_xml import pool_network
from vdi.images.desktop import build as desktop_build
from vdi.images.registry import VersionFiles, register_version
from vdi.models import Desktop, Host, ImageVersion, Operation, Pool
from vdi.services.claims import claim_desktop
from vdi.services.desktops import perform, request_action
from vdi.testing.processes import ROOT, WorkerProcess
from vdi.worker.reconcile import reconcile
from vdi.worker.specs import hostname

pytestmark = [pytest.mark.desktop, pytest.mark.django_db(transaction=True)]
HOST = "desks"


def forget_image_files(name: str) -> None:
    """An earlier test's registered files (the database forgot them between tests)."""
    shutil.rmtree(settings.IMAGE_DIR / name, ignore_errors=True)


@pytest.fixture(scope="session")
def built_desktop() -> desktop_build.BuiltImage:
    """The Debian desktop image, built once per run (and kept in the image cache: an unchanged
    recipe with the same package versions is not built again)."""
    key = desktop_build.build_key()
    cache = settings.IMAGE_CACHE_DIR / f"debian-desktop-{key[:16]}"
    if (cache / "build-key").is_file() and (cache / "build-key").read_text() == key:
        return desktop_build.BuiltImage(
            cache / "disk.qcow2", cache / "vmlinuz", cache / "initrd.img", desktop_build.CMDLINE,
            (cache / "packages.txt").read_text(), key)
    return desktop_build.build_desktop_image(cache, lambda p, s: None, key)


@pytest.fixture
def desktop_version(built_desktop, transactional_db) -> ImageVersion:
    forget_image_files("debian-desktop")
    return register_version("debian-desktop", VersionFiles(
        built_desktop.disk, built_desktop.kernel, built_desktop.initrd, built_desktop.cmdline,
        profile="linux-desktop", readiness="agent", packages=built_desktop.packages,
        session_process=desktop_build.SESSION_PROCESS,
        build_key=built_desktop.build_key))


@pytest.fixture(scope="module")
def namespaced_host() -> Iterator[str]:
    """A hypervisor host of its own (libvirtd in mount, network and UTS namespaces): its
    guests' networks live inside those namespaces only."""
    uri = hvhost("start", HOST)
    remove_test_domains(uri)
    try:
        yield uri
    finally:
        remove_test_domains(uri)
        hvhost("stop", HOST)


@pytest.fixture
def desks(namespaced_host, transactional_db) -> Host:
    Host.objects.update(enabled=False)
    return Host.objects.create(
        name=HOST, libvirt_uri=namespaced_host, domain_type="qemu",
        storage_dir=str(settings.DISK_DIR), memory_capacity_mib=8192,
        vnc_socket_dir=str(hvhost_base() / HOST / "vnc"))


def test_the_image_records_what_it_was_built_from(desktop_version, built_desktop):
    packages = dict(line.split(" ", 1) for line in desktop_version.packages.splitlines())
    for name in ("icewm", "pcmanfm", "xterm", "qemu-guest-agent", "spice-vdagent"):
        assert name in packages, name
    assert desktop_version.sha256 and desktop_version.size_bytes > 100 * 1024**2
    assert (desktop_version.profile, desktop_version.readiness) == ("linux-desktop", "agent")
    assert desktop_version.build_key == built_desktop.build_key == desktop_build.build_key()


def in_namespace(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / "hvhost"), "exec", HOST, "--",
                           *command], capture_output=True, text=True, timeout=60,
                          env={"HVHOST_BASE": str(hvhost_base()),
                               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_a_debian_desktop_on_a_host_with_a_network(
        desks, desktop_version, owner, tmp_path, browser, portal, artifacts, settings):
    pool = Pool.objects.create(name="Debian", image=desktop_version.image, vcpus=2,
                               memory_mib=1024, assignment="automatic",
                               network_mode="isolated")
    pool.users.add(owner)
    worker = WorkerProcess(tmp_path / "worker.log", hosts=(HOST,),
                           env={"VDI_SHUTDOWN_TIMEOUT": "40"})
    worker.start()
    try:
        desktop = claim_desktop(owner, pool)
        started = time.monotonic()
        wait_status(desktop, DesktopStatus.RUNNING, timeout=180)
        wait_for(lambda: Desktop.objects.get(pk=desktop.pk).guest_ready_at, 420,
                 "the guest agent to answer and the session to start")
        print(f"claim -> agent and session ready: {time.monotonic() - started:.0f} s")
        desktop.refresh_from_db()
        check_the_agent_and_the_network(desktop, pool)
        check_the_graphical_session(desktop, browser, portal, owner, artifacts)
        check_freeze_and_thaw(desktop)
        check_a_stop_through_the_agent(desktop, owner)
        perform(desktop, "delete", None)
        wait_gone(desktop)
    finally:
        worker.stop()


def check_the_agent_and_the_network(desktop: Desktop, pool: Pool) -> None:
    facts = desktop.guest_facts
    assert facts["hostname"] == hostname(desktop), "the seed named it"
    assert "Debian" in facts["os"] and facts["users"] == ["user"]
    subnet = pool_network(pool.pk).subnet.rsplit(".", 1)[0] + "."
    addresses = [a for a in facts["addresses"] if a.startswith(subnet)]
    assert addresses, f"an address on the pool's network {subnet}0/24: {facts['addresses']}"
    answer = in_namespace("ping", "-c", "1", "-W", "5", addresses[0])
    assert answer.returncode == 0, f"reachable inside the host's namespace: {answer.stdout}"
    bridge = in_namespace("ip", "-br", "addr", "show", pool_network(pool.pk).bridge)
    assert bridge.returncode == 0 and subnet in bridge.stdout
    assert subprocess.run(["ip", "link", "show", pool_network(pool.pk).bridge],
                          capture_output=True).returncode != 0, "no bridge outside"
    Desktop.objects.filter(pk=desktop.pk).update(guest_facts={})
    reconcile(desktop.host)
    again = Desktop.objects.get(pk=desktop.pk).guest_facts
    assert again["addresses"] == facts["addresses"], "the reconciler asks the agent again"


def check_the_graphical_session(desktop, browser, portal, owner, artifacts) -> None:
    driver = get_driver(desktop.host.libvirt_uri)
    session = driver.agent.run(desktop.domain_name, "/usr/bin/pgrep", ["-u", "user", "-x",
                                                                       "icewm"])
    assert session.exitcode == 0, "IceWM runs for the desktop's user"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, portal, owner.username, "owner-password")
    page.goto(f"{portal.origin}/desktops/{desktop.pk}/console/")
    page.wait_for_selector("#console[data-state=ok]", timeout=60_000)
    shot = artifacts / "debian-desktop.png"

    def rich_screen() -> bool:
        page.locator("#screen canvas").screenshot(path=str(shot))
        picture = Image.open(shot).convert("RGB")
        return len(set(picture.resize((320, 200)).get_flattened_data())) > 200

    wait_for(rich_screen, 120, "a graphical desktop (many colours) on the console")
    picture = Image.open(shot).convert("RGB")
    width, height = picture.size
    taskbar = picture.crop((0, int(height * 0.93), width, height))
    assert len(set(taskbar.get_flattened_data())) > 10, "IceWM's taskbar along the bottom"
    page.close()


def check_freeze_and_thaw(desktop: Desktop) -> None:
    """For consistent snapshots and backups: the agent freezes the file systems and thaws
    them again."""
    agent = get_driver(desktop.host.libvirt_uri).agent
    assert agent.freeze(desktop.domain_name) >= 1
    try:
        status = agent.command(desktop.domain_name, "guest-fsfreeze-status")
        assert status == "frozen"
    finally:
        assert agent.thaw(desktop.domain_name) >= 1
    assert agent.command(desktop.domain_name, "guest-fsfreeze-status") == "thawed"


def check_a_stop_through_the_agent(desktop: Desktop, owner) -> None:
    """The guest ignores the power button (an inhibitor lock): the stop goes through its
    agent instead of pulling the plug."""
    driver = get_driver(desktop.host.libvirt_uri)
    driver.agent.command(desktop.domain_name, "guest-exec", {
        "path": "/usr/bin/systemd-inhibit",
        "arg": ["--what=handle-power-key", "--mode=block", "sleep", "600"]})
    time.sleep(2)
    request_action(owner, desktop, "stop")
    wait_status(desktop, DesktopStatus.STOPPED, timeout=120)
    stop = Operation.objects.filter(desktop=desktop, kind="stop").latest("created_at")
    assert stop.step == "shut down by its guest agent (it ignored ACPI)"


def test_the_windows_profile_shows_its_firmware_through_the_console(
        worker, vm_host, owner, tmp_path):
    from asgiref.sync import async_to_sync

    from tests.console_helpers import communicator, session_cookie, ticket_for
    from vdi.testing.rfb import Stream, colours, framebuffer, handshake

    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "1G"], check=True)
    forget_image_files("windows-blank")
    version = register_version("windows-blank", VersionFiles(blank, profile="windows",
                                                             readiness="none"))
    pool = Pool.objects.create(name="Windows", image=version.image, vcpus=2, memory_mib=2048)
    pool.users.add(owner)
    desktop = claim_desktop(owner, pool)
    wait_status(desktop, DesktopStatus.RUNNING, timeout=180)
    swtpm = subprocess.run(["pgrep", "-af", "swtpm"], capture_output=True, text=True).stdout
    assert str(desktop.domain_uuid) in swtpm, "its TPM runs (swtpm)"
    session = session_cookie(owner)
    time.sleep(12)  # the firmware's first screen, under software emulation
    ticket = ticket_for(owner, session, Desktop.objects.get(pk=desktop.pk))

    async def screen() -> list[bytes]:
        import asyncio

        ws = communicator(desktop.pk, session, ticket)
        assert (await ws.connect())[0]
        loop = asyncio.get_running_loop()
        stream = Stream(
            lambda: asyncio.run_coroutine_threadsafe(ws.receive_from(timeout=20), loop).result(),
            lambda d: asyncio.run_coroutine_threadsafe(ws.send_to(bytes_data=d), loop).result())
        init = await asyncio.to_thread(handshake, stream)
        rows = await asyncio.to_thread(framebuffer, stream, init)
        await ws.disconnect()
        return rows

    rows = async_to_sync(screen)()
    assert colours(rows) > 2, "the firmware draws its screen (not a blank one)"
    request_action(owner, desktop, "delete")
    wait_gone(desktop)
    assert not list(Path("/var/lib/libvirt/qemu/nvram").glob(f"{desktop.domain_name}_VARS*")), \
        "its UEFI variables went with it"

"""A real desktop: provisioned by a Celery worker through libvirt, booted, reached over VNC,
stopped and deleted without leaving a domain or a file behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import status_of, wait_for, wait_gone, wait_status
from vdi import task_names
from vdi.choices import DesktopStatus, OperationStatus
from vdi.hypervisor import PowerState, get_driver
from vdi.images.tiny import READY_MARKER
from vdi.models import DeletedDesktop, Desktop, Operation
from vdi.services import dispatch
from vdi.services.desktops import create_desktop, request_action

pytestmark = [pytest.mark.vm, pytest.mark.django_db(transaction=True)]


def our_domains(desktop: Desktop) -> list[str]:
    prefix = desktop.domain_name.rsplit("-", 1)[0]
    return [d.name for d in get_driver(desktop.host.libvirt_uri).list_domains()
            if d.name.startswith(prefix)]


def test_desktop_lifecycle_on_a_real_guest(worker, tiny_pool, owner):
    desktop = create_desktop(owner, tiny_pool, "127.0.0.1")
    wait_status(desktop, DesktopStatus.RUNNING)
    driver = get_driver(desktop.host.libvirt_uri)
    assert driver.state(desktop.domain_name) == PowerState.RUNNING
    disk = Path(desktop.disk_path)
    assert disk.exists()

    log = Path(desktop.serial_log_path)
    wait_for(lambda: log.exists() and READY_MARKER in log.read_text(errors="replace"), 120,
             "the guest's ready marker on its serial log")

    endpoint = driver.vnc_endpoint(desktop.domain_name)
    assert endpoint is not None and endpoint.host == "127.0.0.1"
    with socket.create_connection((endpoint.host, endpoint.port), timeout=10) as vnc:
        assert vnc.recv(12) == b"RFB 003.008\n"
        vnc.sendall(b"RFB 003.008\n")
        offered = vnc.recv(16)
        assert offered == b"\x01\x02", "only VNC Authentication: the screen needs a password"

    # The same provisioning message delivered again creates nothing more.
    provision = Operation.objects.get(desktop=desktop, kind="provision")
    dispatch.send(task_names.DESKTOP_ACTION, ("provision", desktop.pk, provision.pk),
                  desktop.host.queue)
    wait_for(lambda: "nothing to do" in Operation.objects.get(pk=provision.pk).step, 60,
             "the duplicate delivery to be handled")
    assert our_domains(desktop) == [desktop.domain_name]
    assert [p for p in disk.parent.iterdir() if p.name.startswith(desktop.domain_name)] == [disk]

    request_action(owner, desktop, "stop")
    wait_status(desktop, DesktopStatus.STOPPED, timeout=90)
    assert driver.state(desktop.domain_name) == PowerState.SHUTOFF
    assert "VDI-POWER-BUTTON" in log.read_text(errors="replace"), "stopped by ACPI, gracefully"

    request_action(owner, desktop, "delete")
    wait_gone(desktop)
    assert DeletedDesktop.objects.get(desktop_id=desktop.pk).owner_name == owner.username
    assert driver.lookup(desktop.domain_name) is None
    assert not disk.exists()
    assert not log.exists()
    # the desktop's row is gone: its operations keep what they acted on, in words
    operations = Operation.objects.filter(target=str(desktop)).order_by("created_at")
    assert [(o.kind, o.status) for o in operations] == [
        ("provision", OperationStatus.SUCCEEDED),
        ("stop", OperationStatus.SUCCEEDED),
        ("delete", OperationStatus.SUCCEEDED),
    ]


def test_failed_provisioning_leaves_no_domain_and_no_disk(worker, tiny_pool, owner, tiny_version):
    tiny_version.kernel_path = "/nonexistent/vmlinuz"
    tiny_version.save()
    desktop = create_desktop(owner, tiny_pool)
    wait_for(lambda: status_of(desktop) == DesktopStatus.ERROR, 120, "the provisioning to fail")
    assert "vmlinuz" in desktop.error_detail
    assert "vmlinuz" not in desktop.last_error, "the user reads words, not the raw cause"
    assert get_driver(desktop.host.libvirt_uri).lookup(desktop.domain_name) is None
    assert not Path(desktop.disk_path).exists()
    failed = Operation.objects.get(desktop=desktop)
    assert failed.status == OperationStatus.FAILED and failed.error == desktop.last_error
    assert failed.detail == desktop.error_detail

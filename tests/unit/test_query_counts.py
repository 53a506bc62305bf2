"""The desktop list (page rows and API) costs the same number of queries whatever the number
of desktops and of past operations."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.test import Client
from django.test.utils import CaptureQueriesContext

from vdi.choices import OperationStatus
from vdi.models import Desktop, Operation
from vdi.services import tokens


def add_desktops(owner, pool, host, image_version, count: int, start: int = 0) -> None:
    Desktop.objects.bulk_create([
        Desktop(owner=owner, pool=pool, host=host, image_version=image_version,
                domain_name=f"count-{n}", disk_path=f"/nonexistent/{n}.qcow2",
                serial_log_path="/nonexistent/log", vcpus=1, memory_mib=256,
                status="running" if n % 2 else "stopped", vnc_password="x")
        for n in range(start, start + count)])


def add_operations(desktop: Desktop, count: int) -> None:
    Operation.objects.bulk_create([
        Operation(kind="start", desktop=desktop, target=str(desktop),
                  status=OperationStatus.SUCCEEDED) for _ in range(count)])


def queries(client: Client, path: str) -> int:
    """Queries made for the page; it must not load any past operation either."""
    loaded: list[Operation] = []

    def count(sender, instance, **kwargs) -> None:
        loaded.append(instance)

    post_init.connect(count, sender=Operation)
    try:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
    finally:
        post_init.disconnect(count, sender=Operation)
    assert loaded == [], f"{path} loaded {len(loaded)} finished operations"
    return len(captured)


@pytest.mark.parametrize("path", ["/desktops/rows/", "/", "/api/desktops/?limit=500"])
def test_queries_stay_constant(owner, pool, host, image_version, path):
    pool.max_per_user = 5000
    pool.save()
    client = Client()
    client.force_login(owner)
    if path.startswith("/api/"):
        client = Client(HTTP_AUTHORIZATION="Bearer " + tokens.make(owner, "t", ["read"],
                                                                    1).key)
    add_desktops(owner, pool, host, image_version, 10)
    queries(client, path)  # warm: content types, permissions
    with_ten = queries(client, path)
    add_desktops(owner, pool, host, image_version, 990, start=10)
    with_thousand = queries(client, path)
    add_operations(Desktop.objects.filter(owner=owner).earliest("pk"), 5000)
    with_history = queries(client, path)
    assert with_ten == with_thousand == with_history, (with_ten, with_thousand, with_history)

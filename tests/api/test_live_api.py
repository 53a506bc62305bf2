"""Schemathesis against the live API under daphne: generated requests for every operation of
the schema, as an administrator with a read+write token. No answer is a server error, and every
answer matches the schema (status, content type, body)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import purge
from vdi.models import ApiToken
from vdi.roles import ADMINISTRATORS
from vdi.services import tokens
from vdi.testing.processes import ServerProcess


@pytest.fixture(scope="module")
def live_api(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A portal under daphne with a pool, a desktop row and an administrator's token."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from tests.support import make_version
    from vdi.models import Desktop, Host, Pool

    with django_db_blocker.unblock():
        admin = get_user_model().objects.create_user("schema-admin", password="x")
        admin.groups.add(Group.objects.get(name=ADMINISTRATORS))
        host = Host.objects.get_or_create(name="schema-host", defaults={
            "storage_dir": "/nonexistent"})[0]
        version = make_version("schema", "/nonexistent/schema.qcow2")
        pool = Pool.objects.create(name="Schema pool", image=version.image, max_size=2)
        Desktop.objects.create(owner=admin, pool=pool, host=host, image_version=version,
                               domain_name="vditest-schema", disk_path="/nonexistent/s.qcow2",
                               serial_log_path="/nonexistent/s.log", vcpus=1, memory_mib=256,
                               status="running", vnc_port=1)
        key = tokens.make(admin, "schemathesis", [ApiToken.READ, ApiToken.WRITE], 1).key
        server = ServerProcess(Path(tmp_path_factory.mktemp("daphne")) / "daphne.log")
        server.start()
        try:
            yield {"origin": server.origin, "key": key}
        finally:
            server.stop()
            purge(host.queue)
            Desktop.objects.all().delete()
            Pool.objects.all().delete()
            admin.delete()


@pytest.mark.django_db(transaction=True)
def test_the_api_keeps_its_schema(live_api, tmp_path):
    """Schemathesis' own runner (its CLI), a few examples per operation, a fixed seed."""
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "run",
         f"{live_api['origin']}/api/schema/?format=json",
         "--header", f"Authorization: Bearer {live_api['key']}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance,response_headers_conformance",
         "--max-examples", "8", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout.lower()

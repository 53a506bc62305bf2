"""A web process on its own: serve every page and every desktop action once, then print the
modules it loaded that the web tier must never load (one per line). Run by
``tests/unit/test_layers.py`` as ``python -m tests.web_process`` with a fresh database."""

from __future__ import annotations

import os
import sys

import django

FORBIDDEN = ("libvirt", "vdi.tasks", "vdi.worker", "vdi.hypervisor", "vdi.images")


def serve_everything() -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from tests.support import make_version, purge
    from vdi import actions
    from vdi.models import Desktop, Host, Pool

    call_command("migrate", verbosity=0)
    admin = get_user_model().objects.create_superuser("probe-admin", password="x")
    owner = get_user_model().objects.create_user("probe-owner", password="x")
    host = Host.objects.create(name=os.environ["VDI_HOST_NAME"], storage_dir="/nonexistent")
    pool = Pool.objects.create(name="Probe", image=make_version("probe", "/nonexistent").image)
    pool.users.add(owner)
    client, staff = Client(), Client()
    client.force_login(owner)
    staff.force_login(admin)
    try:
        assert client.post(f"/pools/{pool.pk}/claim/").status_code == 302
        desktop = Desktop.objects.get(owner=owner)
        for action in actions.REQUESTABLE:
            Desktop.objects.filter(pk=desktop.pk).update(status=next(iter(action.allowed_from)))
            client.post(f"/desktops/{desktop.pk}/{action.name}/")
            Desktop.objects.filter(pk=desktop.pk).update(status=next(iter(action.allowed_from)))
            staff.post("/admin/vdi/desktop/", {"action": f"{action.name}_desktops",
                                               "_selected_action": [desktop.pk]})
        Desktop.objects.filter(pk=desktop.pk).update(status="running", vnc_port=1, owner=owner)
        for path in ("/", "/desktops/rows/", f"/desktops/{desktop.pk}/console/",
                     f"/desktops/{desktop.pk}/console/diagnose/"):
            assert client.get(path).status_code == 200, path
        assert client.post(f"/desktops/{desktop.pk}/console/ticket/").status_code == 200
        for page in ("host", "goldenimage", "imageversion", "pool", "desktop", "operation",
                     "auditevent", "deleteddesktop", "reconcilerun", "stray", "webhook",
                     "webhookdelivery"):
            assert staff.get(f"/admin/vdi/{page}/").status_code == 200, page
        for path in ("/dashboard/", "/dashboard/charts.json",
                     *(f"/dashboard/parts/{part}/" for part in
                       ("summary", "hosts", "pools", "sessions", "failures", "reconciler"))):
            assert staff.get(path).status_code == 200, path  # files and the database only
        assert staff.get("/metrics").status_code == 200  # reads Redis and the database only
        for probe in ("/health/live", "/health/ready"):
            assert client.get(probe).status_code in (200, 503), probe
        staff.post("/admin/vdi/pool/", {"action": "drain_pools", "_selected_action": [pool.pk]})
    finally:
        purge(host.queue)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's host name, locmem mail
    serve_everything()
    loaded = sorted(name for name in sys.modules
                    if any(name == f or name.startswith(f + ".") for f in FORBIDDEN))
    print("\n".join(loaded))


if __name__ == "__main__":
    main()

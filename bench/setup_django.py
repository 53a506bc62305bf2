"""Django for a benchmark: the test settings with a data folder, host and prefix of its own,
so a benchmark never touches the demo's or the tests' desktops."""

from __future__ import annotations

import os


def configure() -> None:
    import django

    main_data = os.environ.get("VDI_DATA_DIR", "/var/lib/vdi-portal")
    os.environ["VDI_TEST_DATA_DIR"] = f"{main_data}/bench"
    os.environ["VDI_DOMAIN_PREFIX"] = "vdibench"
    os.environ["VDI_HOST_NAME"] = "bench"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()

"""Django for a benchmark: the test settings with a data folder, host and prefix of its own,
so a benchmark never touches the demo's or the tests' desktops."""

from __future__ import annotations

import os

_configured = False


def configure(folder: str = "bench") -> None:
    """Once per process (a benchmark may import another's helpers, which configure too).
    ``folder``: the data folder under the main one (a benchmark that needs no guest or image
    may keep a database of its own)."""
    global _configured
    if _configured:
        return
    import django

    main_data = os.environ.get("VDI_DATA_DIR", "/var/lib/vdi-portal")
    os.environ["VDI_TEST_DATA_DIR"] = f"{main_data}/{folder}"
    os.environ["VDI_DOMAIN_PREFIX"] = "vdibench"
    os.environ["VDI_HOST_NAME"] = "bench"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    _configured = True

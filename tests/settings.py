"""The portal's settings with test defaults: a data folder, host name and domain prefix of
their own, so that the suite never touches the demo's desktops on the same libvirt."""

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def with_redis_database(url: str) -> str:
    """``url`` on the tests' own Redis database (``VDI_TEST_REDIS_DB``, default 1): the
    suite never reads or purges a running portal's queues, even on the same server."""
    database = os.environ.get("VDI_TEST_REDIS_DB", "1")
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query)) | {"db": database}
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{database}"))


_main_data = os.environ.get("VDI_DATA_DIR", "/var/lib/vdi-portal")
os.environ.setdefault("VDI_KERNEL_DIR", f"{_main_data}/kernel")
# Kept in the environment so that the portal and worker the tests start use the same folders.
os.environ.setdefault("VDI_TEST_DATA_DIR", f"{_main_data}/test")
os.environ["VDI_DATA_DIR"] = os.environ["VDI_TEST_DATA_DIR"]
os.environ["VDI_SECRETS_DIR"] = f"{os.environ['VDI_DATA_DIR']}/secrets"  # never the real ones
os.environ.setdefault("VDI_SECRET_KEY", "test-secret-key-that-is-long-enough-0123456789")
os.environ.setdefault("VDI_DOMAIN_PREFIX", "vditest")
os.environ.setdefault("VDI_HOST_NAME", "test")
os.environ.setdefault("VDI_DOMAIN_TYPE", "qemu")
os.environ.setdefault("VDI_SHUTDOWN_TIMEOUT", "20")
os.environ.setdefault("VDI_ALLOWED_ORIGINS", "http://localhost,http://localhost:8000")
os.environ.setdefault("VDI_REDIS_KEY_PREFIX", "vditest")
# Kept in the environment so that the processes the tests start share the tests' database.
os.environ["REDIS_URL"] = with_redis_database(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
os.environ.setdefault("VDI_DEMO_DESKTOP_IMAGE", "false")
os.environ.setdefault("VDI_IMAGE_CACHE_DIR", f"{_main_data}/cache")  # built images, shared
os.environ.setdefault("VDI_GUESTFS_APPLIANCE_DIR", f"{_main_data}/guestfs-appliance")

from portal.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast personas
# A cache per process, emptied before each test (tests/conftest.py): rate limits start fresh.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

from vdi.folders import make_folders, service_user  # noqa: E402

# The test data folder's, from the one table the set-up uses, owned as scripts/run's are: the
# processes the tests start run as the service user (scripts/service).
make_folders(service_user())
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

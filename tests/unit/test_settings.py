"""A bad environment value stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import Env


def start_django(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings",
               "VDI_SECRET_KEY": "k" * 40, **env}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"],
                          env=environ, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("VDI_DEBUG", "maybe", "VDI_DEBUG: expected true or false, got 'maybe'"),
        ("VDI_DOMAIN_TYPE", "xen", "VDI_DOMAIN_TYPE: expected one of auto, kvm, qemu"),
        ("DATABASE_URL", "mysql://u:p@h/db", "DATABASE_URL: only sqlite:// and postgres://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: expected a URL starting with redis://"),
        ("VDI_SHUTDOWN_TIMEOUT", "soon", "VDI_SHUTDOWN_TIMEOUT: expected an integer"),
        ("VDI_SHUTDOWN_TIMEOUT", "0", "VDI_SHUTDOWN_TIMEOUT: must be at least 1"),
        ("VDI_DISK_DIR", "relative/disks", "VDI_DISK_DIR: expected an absolute path"),
        ("VDI_SECRET_KEY", "short", "VDI_SECRET_KEY: must be at least 32 characters"),
        ("VDI_ALLOWED_ORIGINS", "vdi.example.org", "VDI_ALLOWED_ORIGINS: 'vdi.example.org' must"),
        ("VDI_LOGIN_RATE_LIMIT", "five per minute", "VDI_LOGIN_RATE_LIMIT: expected rules"),
        ("VDI_EMAIL_URL", "carrier-pigeon", "VDI_EMAIL_URL: not an email URL"),
        ("VDI_ADMIN_REQUIRE_2FA", "sometimes", "VDI_ADMIN_REQUIRE_2FA: expected true or false"),
        ("VDI_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8, 10.0.0.1/8",
         "VDI_WEBHOOK_ALLOWED_NETWORKS: '10.0.0.1/8' is not a network in CIDR form"),
        ("VDI_WEBHOOK_ALLOWED_NETWORKS", "intranet",
         "VDI_WEBHOOK_ALLOWED_NETWORKS: 'intranet' is not a network in CIDR form"),
    ],
)
def test_bad_value_stops_startup_naming_the_variable(variable, value, message):
    result = start_django(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_good_values_start():
    result = start_django(VDI_DEBUG="yes", VDI_DOMAIN_TYPE="kvm",
                          DATABASE_URL="postgres://u:p@db.example:5432/vdi")
    assert result.returncode == 0, result.stderr


def test_missing_secret_key_outside_debug_is_an_error(tmp_path):
    env = Env({"VDI_SECRET_KEY": ""})
    with pytest.raises(ImproperlyConfigured, match="VDI_SECRET_KEY"):
        env.required_str("VDI_SECRET_KEY", "signing sessions")
    result = start_django(VDI_SECRET_KEY="", VDI_DATA_DIR=str(tmp_path), VDI_DEBUG="false",
                          VDI_SECRETS_DIR=str(tmp_path / "secrets"))
    assert "VDI_SECRET_KEY: must be set" in result.stderr


def test_typed_helpers():
    env = Env({"A": " on ", "B": "3", "C": "x, y,,z", "D": "sqlite:////tmp/x.db"})
    assert env.flag("A", False) is True
    assert env.number("B", 0, minimum=1) == 3
    assert env.items("C", []) == ["x", "y", "z"]
    assert env.database("D", "")["NAME"] == "/tmp/x.db"
    assert env.text("MISSING", "default") == "default"


def test_networks_are_cidrs_and_none_by_default():
    env = Env({"NETS": "127.0.0.0/8, fd00::/8,192.0.2.7"})
    assert [str(n) for n in env.networks("NETS")] == ["127.0.0.0/8", "fd00::/8",
                                                      "192.0.2.7/32"]
    assert Env({}).networks("NETS") == ()


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"VDI_CONSOLE_HEARTBEAT": "60", "VDI_CONSOLE_STALE": "90"},
         ["VDI_CONSOLE_STALE (90 s) must be at least twice VDI_CONSOLE_HEARTBEAT (60 s)"]),
        ({"VDI_OPERATION_LEASE": "200", "VDI_SHUTDOWN_TIMEOUT": "60"},
         ["VDI_OPERATION_LEASE (200 s) must be longer than the longest step"]),
        ({"VDI_TASK_VISIBILITY_TIMEOUT": "600", "VDI_OPERATION_LEASE": "600"},
         ["VDI_TASK_VISIBILITY_TIMEOUT (600 s) must be longer than VDI_OPERATION_LEASE"]),
        ({"VDI_STUCK_AFTER": "900"},
         ["VDI_STUCK_AFTER (900 s) must be longer than VDI_OPERATION_LEASE + "
          "VDI_HOST_OUTAGE_WINDOW (900 s)"]),
        ({"VDI_HOST_OUTAGE_WINDOW": "10", "VDI_HOST_RETRY_MAX_SECONDS": "30"},
         ["VDI_HOST_OUTAGE_WINDOW (10 s) must be at least VDI_HOST_RETRY_MAX_SECONDS"]),
        ({"VDI_CONSOLE_STALE": "10", "VDI_STUCK_AFTER": "60"},
         ["VDI_CONSOLE_STALE (10 s)", "VDI_STUCK_AFTER (60 s)"]),
    ],
)
def test_timing_limits_that_do_not_fit_together_stop_startup(env, names):
    result = start_django(**env)
    assert result.returncode != 0 and "Timing settings that do not fit together" in result.stderr
    for name in names:
        assert name in result.stderr


def test_the_default_timing_fits_together():
    from portal.timing import Timing, problems

    assert problems(Timing(shutdown_timeout=60, operation_lease=600, stuck_after=1200,
                           host_outage_window=300, host_retry_max=30, visibility_timeout=3600,
                           console_heartbeat=30, console_stale=90)) == []

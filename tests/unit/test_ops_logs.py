"""Log lines that say which request, which user and which task they belong to, in plain text
or JSON (VDI_LOG_FORMAT)."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client

from tests.support import queue_key, signed_in
from vdi import request_log, tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """The handler the settings build for VDI_LOG_FORMAT=json, on the root logger: what it
    writes, one parsed JSON object a line."""
    config: Any = settings.LOGGING
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(request_log.JsonFormatter())
    handler.addFilter(request_log.ContextFilter())
    assert config["formatters"]["json"]["()"] == "vdi.request_log.JsonFormatter"
    assert config["filters"]["context"]["()"] == "vdi.request_log.ContextFilter"
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    lines: list[Any] = []

    def read() -> list[Any]:
        lines[:] = [json.loads(line) for line in stream.getvalue().splitlines() if line]
        return lines

    yield read
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_a_requests_lines_carry_its_id_and_user(owner, json_lines):
    rid = "edge-proxy-4f1c2a9b"
    response = signed_in(owner).get("/no/such/page/", HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 404
    assert response["X-Request-ID"] == rid
    line = next(e for e in json_lines() if e["message"] == "Not Found: /no/such/page/")
    assert line["request_id"] == rid
    assert line["user_id"] == owner.pk and line["username"] == "owner"
    assert line["level"] == "WARNING" and line["logger"] == "django.request"
    assert "time" in line


def test_a_made_up_id_replaces_a_missing_or_unsafe_one(db, json_lines):
    for sent in (None, "bad id\nFAKE LOG LINE", "x" * 300, "short"):
        headers: dict[str, Any] = {"HTTP_X_REQUEST_ID": sent} if sent is not None else {}
        response = Client().get("/no/such/page/", **headers)
        rid = response["X-Request-ID"]
        assert rid != sent and len(rid) == 32 and int(rid, 16) >= 0
        line = [e for e in json_lines() if e["message"].startswith("Not Found")][-1]
        assert line["request_id"] == rid
        assert "username" not in line  # nobody signed in


def test_nothing_of_a_request_stays_on_later_lines(owner, json_lines):
    signed_in(owner).get("/no/such/page/", HTTP_X_REQUEST_ID="request-one-12345")
    logging.getLogger("vdi.test").warning("after the request")
    line = next(e for e in json_lines() if e["message"] == "after the request")
    assert "request_id" not in line and "username" not in line


@pytest.mark.django_db(transaction=True)  # the claim commits inside the request, as served
def test_a_task_sent_by_a_request_carries_its_id(owner, pool, host, empty_queue):
    rid = "claim-request-77aa88bb"
    response = signed_in(owner).post(f"/pools/{pool.pk}/claim/", HTTP_X_REQUEST_ID=rid)
    assert response.status_code == 302
    raw: Any = redis.Redis.from_url(settings.CELERY_BROKER_URL).rpop(queue_key(host.queue))
    envelope = json.loads(raw)
    assert envelope["headers"]["task"] == "vdi.desktop_action"
    assert envelope["headers"]["vdi_request_id"] == rid
    body = json.loads(base64.b64decode(envelope["body"]))
    assert body[0][0] == "provision"


def test_a_tasks_lines_carry_its_id_and_name(host, json_lines, tmp_path):
    host.libvirt_uri = f"qemu+unix:///system?socket={tmp_path}/none"
    host.save()
    result = tasks.host_heartbeat.apply(args=(host.pk,), task_id="task-id-for-the-test")
    assert result.get().startswith("libvirt does not answer")
    line = next(e for e in json_lines() if e["message"].startswith("heartbeat of host"))
    assert line["task_id"] == "task-id-for-the-test"
    assert line["task_name"] == "vdi.host_heartbeat"
    assert line["logger"] == "vdi.worker.heartbeat" and line["level"] == "WARNING"
    logging.getLogger("vdi.test").warning("after the task")
    after = next(e for e in json_lines() if e["message"] == "after the task")
    assert "task_id" not in after


def test_plain_lines_name_the_request_and_user():
    record = logging.LogRecord("vdi.x", logging.INFO, __file__, 1, "hello", None, None)
    with request_log.bound(request_id="abc12345", username="owner", user_id=3):
        request_log.ContextFilter().filter(record)
    config: Any = settings.LOGGING
    formatter = request_log.PlainFormatter(config["formatters"]["plain"]["format"])
    assert formatter.format(record).endswith("vdi.x [request=abc12345 user=owner]: hello")
    bare = logging.LogRecord("vdi.x", logging.INFO, __file__, 1, "hello", None, None)
    request_log.ContextFilter().filter(bare)
    assert formatter.format(bare).endswith("INFO    vdi.x: hello")


@pytest.mark.parametrize("fmt", ["json", "plain"])
def test_vdi_log_format_chooses_the_format(fmt):
    """The real settings, in a process of their own: what the console handler writes."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "VDI_LOG_FORMAT": fmt}
    code = ("import django; django.setup(); import logging; "
            "from vdi import request_log\n"
            "with request_log.bound(request_id='rid-0123456789', task_id='t-1', "
            "task_name='vdi.x'):\n"
            "    logging.getLogger('vdi.check').warning('hello %s', 'there')")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    last = result.stderr.strip().splitlines()[-1]
    if fmt == "json":
        line = json.loads(last)
        assert line["message"] == "hello there" and line["request_id"] == "rid-0123456789"
        assert line["task_id"] == "t-1" and line["logger"] == "vdi.check"
    else:
        assert last.endswith("vdi.check [request=rid-0123456789 task=vdi.x[t-1]]: hello there")


def test_a_bad_log_format_stops_start_up():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "VDI_LOG_FORMAT": "xml"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "VDI_LOG_FORMAT: expected one of plain, json, got 'xml'" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VDI_HEARTBEAT_INTERVAL": "60", "VDI_HEARTBEAT_STALE": "90"},
         "VDI_HEARTBEAT_STALE: must be at least twice VDI_HEARTBEAT_INTERVAL (120), got 90"),
        ({"VDI_METRICS_TOKEN": "short"},
         "VDI_METRICS_TOKEN: must be at least 16 characters long"),
        ({"VDI_WEBHOOK_BACKOFF_MAX": "4000"},
         "VDI_WEBHOOK_BACKOFF_MAX: must be below VDI_TASK_VISIBILITY_TIMEOUT (3600), got 4000"),
        ({"VDI_WEBHOOK_TIMEOUT": "0"}, "VDI_WEBHOOK_TIMEOUT: must be at least 1, got 0"),
    ],
)
def test_operations_settings_that_cannot_work_stop_start_up(env, message):
    from tests.unit.test_settings import start_django

    result = start_django(**env)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-500:]


OPERATIONS_VARIABLES = ("VDI_LOG_FORMAT", "VDI_METRICS_TOKEN", "VDI_HEARTBEAT_INTERVAL",
                        "VDI_HEARTBEAT_STALE", "VDI_WEBHOOK_TIMEOUT", "VDI_WEBHOOK_MAX_ATTEMPTS",
                        "VDI_WEBHOOK_BACKOFF", "VDI_WEBHOOK_BACKOFF_MAX",
                        "VDI_WEBHOOK_SWEEP_INTERVAL")


@pytest.mark.parametrize("name", OPERATIONS_VARIABLES)
def test_operations_settings_are_documented(name):
    assert f'"{name}"' in (ROOT / "portal" / "settings.py").read_text()
    assert f"`{name}`" in (ROOT / "README.md").read_text()
    assert f"{name}=" in (ROOT / "docker" / ".env.example").read_text()

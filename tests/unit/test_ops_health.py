"""Liveness and readiness: the database, Redis (a private redis-server, stopped and started
by the test) and each enabled host's heartbeat, which its worker writes."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
import redis
from django.test import Client
from django.utils import timezone

from tests.support import drain, purge
from vdi import tasks
from vdi.models import Host
from vdi.testing.processes import free_port, wait_for


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, no persistence."""

    def __init__(self, folder) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, 10, "the private redis-server to answer")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path, settings):
    server = PrivateRedis(tmp_path)
    server.start()
    settings.REDIS_URL = server.url  # what /health/ready checks
    yield server
    server.stop()


def ready(**headers) -> tuple[int, dict[str, str]]:
    response = Client().get("/health/ready", HTTP_ACCEPT="application/json", **headers)
    return response.status_code, json.loads(response.content)


def beat(host: Host, seconds_ago: float, error: str = "") -> None:
    Host.objects.filter(pk=host.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds_ago), heartbeat_error=error)


def test_live_asks_nothing_else(db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    response = Client().get("/health/live", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and json.loads(response.content) == {}


def test_ready_follows_redis_down_and_back(host, private_redis):
    beat(host, 1)
    status, checks = ready()
    assert status == 200, checks
    assert set(checks.values()) == {"OK"}
    assert any(name.startswith("Database") for name in checks)
    assert f"Redis(db=0, host='127.0.0.1', port={private_redis.port})" in checks
    assert f"HostHeartbeat(host='{host.name}')" in checks

    private_redis.stop()
    status, checks = ready()
    assert status == 503
    redis_check = f"Redis(db=0, host='127.0.0.1', port={private_redis.port})"
    assert checks[redis_check].startswith("Unavailable: Unable to connect to Redis")
    assert checks[f"HostHeartbeat(host='{host.name}')"] == "OK"

    private_redis.start()
    status, checks = ready()
    assert status == 200 and checks[redis_check] == "OK"


def test_a_host_with_a_stale_heartbeat_makes_ready_red(host, private_redis, settings):
    settings.HEARTBEAT_STALE = 120
    beat(host, 300)
    status, checks = ready()
    assert status == 503
    problem = checks[f"HostHeartbeat(host='{host.name}')"]
    assert problem.startswith(f"Unavailable: host {host.name}: last heartbeat 30")
    # The other checks still say OK: the answer names what is wrong.
    assert [name for name, state in checks.items() if state != "OK"] == [
        f"HostHeartbeat(host='{host.name}')"]

    beat(host, 5)
    assert ready()[0] == 200
    Host.objects.filter(pk=host.pk).update(enabled=False, heartbeat_at=None)
    status, checks = ready()
    assert status == 200 and f"HostHeartbeat(host='{host.name}')" not in checks


def test_a_host_never_heard_from_is_down(host, private_redis):
    status, checks = ready()
    assert status == 503
    assert "no heartbeat from its worker yet" in checks[f"HostHeartbeat(host='{host.name}')"]


def test_the_heartbeat_task_writes_the_beat(host, private_redis):
    host.libvirt_uri = "test:///default"
    host.save()
    before = timezone.now()
    assert tasks.host_heartbeat.apply(args=(host.pk,)).get() == "ok"
    host.refresh_from_db()
    assert host.heartbeat_at is not None and host.heartbeat_at >= before
    assert host.heartbeat_error == ""
    assert ready()[0] == 200


def test_a_worker_whose_libvirt_does_not_answer_reports_it(host, private_redis, tmp_path):
    host.libvirt_uri = f"qemu+unix:///system?socket={tmp_path}/no-such-libvirt-sock"
    host.save()
    result = tasks.host_heartbeat.apply(args=(host.pk,)).get()
    assert result.startswith("libvirt does not answer")
    host.refresh_from_db()
    assert host.heartbeat_at is not None and "no-such-libvirt-sock" in host.heartbeat_error
    status, checks = ready()
    assert status == 503
    assert "libvirt does not answer" in checks[f"HostHeartbeat(host='{host.name}')"]


def test_beat_sends_a_heartbeat_to_each_enabled_hosts_queue(host, empty_queue):
    other = Host.objects.create(name="testops-off", storage_dir="/nonexistent", enabled=False)
    purge(other.queue)
    assert tasks.heartbeat_hosts.apply().get() == 1
    assert drain(host.queue) == [{"task": "vdi.host_heartbeat", "args": [host.pk]}]
    assert drain(other.queue) == []


def test_the_beat_schedule_sends_heartbeats(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["heartbeat-hosts"]
    assert entry == {"task": "vdi.heartbeat_hosts", "schedule": settings.HEARTBEAT_INTERVAL}
    assert settings.HEARTBEAT_STALE >= 2 * settings.HEARTBEAT_INTERVAL

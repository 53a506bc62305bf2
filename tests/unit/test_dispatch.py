"""Publishing a task to a Redis that is briefly away: Celery's publish retry policy waits for
it; a Redis that stays away is an error the service records (see test_services). Each case
runs in a process of its own against a private redis-server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from tests.settings import with_redis_database
from tests.support import queue_key
from vdi.testing.processes import ROOT, free_port

PUBLISH = """
import django, time
django.setup()
from vdi.services import dispatch
started = time.monotonic()
try:
    dispatch.send("vdi.desktop_action", ("start", 1, 1), "host.dispatch-test")
except Exception as exc:
    print("failed", type(exc).__name__, round(time.monotonic() - started, 1))
else:
    print("sent", round(time.monotonic() - started, 1))
"""


def publisher(port: int, **extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "REDIS_URL": f"redis://127.0.0.1:{port}/0", **extra}
    return subprocess.Popen([sys.executable, "-c", PUBLISH], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)
    raise AssertionError("redis-server did not start")


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


def test_a_publish_waits_for_a_redis_that_comes_back(port):
    sender = publisher(port)
    time.sleep(0.5)  # Redis is away while the first attempts fail
    server = start_redis(port)
    try:
        out, err = sender.communicate(timeout=60)
        assert out.startswith("sent"), out + err[-2000:]
        queue = redis.Redis.from_url(with_redis_database(f"redis://127.0.0.1:{port}/0"))
        assert queue.llen(queue_key("host.dispatch-test")) == 1, "in the tests' own database"
    finally:
        server.terminate()
        server.wait(10)


def test_a_publish_gives_up_when_redis_stays_away(port):
    out, err = publisher(port).communicate(timeout=60)
    verdict, kind, seconds = out.split()
    assert (verdict, kind) == ("failed", "OperationalError"), err[-2000:]
    assert float(seconds) >= 1.0, "it retried with backoff before giving up"


def test_two_installations_on_one_redis_keep_to_their_own_queues(port):
    server = start_redis(port)
    try:
        for prefix in ("vdione", "vditwo"):
            out, err = publisher(port, VDI_REDIS_KEY_PREFIX=prefix).communicate(timeout=60)
            assert out.startswith("sent"), out + err[-2000:]
        client = redis.Redis.from_url(with_redis_database(f"redis://127.0.0.1:{port}/0"))
        keys = {key.decode() for key in client.keys("*host.dispatch-test*")}
        assert {key.split(":", 1)[0] for key in keys} == {"vdione", "vditwo"}, \
            "every key (queues, kombu's bindings) carries its installation's prefix"
        assert {"vdione:host.dispatch-test", "vditwo:host.dispatch-test"} <= keys
        assert client.llen("vdione:host.dispatch-test") == 1
    finally:
        server.terminate()
        server.wait(10)


LISTEN = """
import asyncio, django
django.setup()
from channels.layers import get_channel_layer
from vdi.console.notify import desktop_group

async def listen():
    layer = get_channel_layer()
    me = await layer.new_channel()
    await layer.group_add(desktop_group(7), me)
    print("listening", flush=True)
    try:
        heard = await asyncio.wait_for(layer.receive(me), 20)
        print("heard", heard["from"], flush=True)
    except asyncio.TimeoutError:
        print("heard nothing", flush=True)

asyncio.run(listen())
"""

NOTICE = """
import django
django.setup()
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from vdi.console.notify import desktop_group
import os
async_to_sync(get_channel_layer().group_send)(
    desktop_group(7), {"type": "vdi.notice", "from": os.environ["VDI_REDIS_KEY_PREFIX"]})
print("sent")
"""


def portal_process(port: int, prefix: str, script: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
           "REDIS_URL": f"redis://127.0.0.1:{port}/0", "VDI_REDIS_KEY_PREFIX": prefix}
    return subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_installations_on_one_redis_hear_only_their_own_live_notices(port):
    """A console of one portal in group desktop-7 never hears the other portal's notices for
    its own desktop 7: the channel layer's groups carry the installation's prefix."""
    server = start_redis(port)
    try:
        listener = portal_process(port, "vdione", LISTEN)
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "listening", listener.stderr
        for prefix in ("vditwo", "vdione"):  # the other's first: the first heard must be ours
            out, err = portal_process(port, prefix, NOTICE).communicate(timeout=60)
            assert out.strip() == "sent", err[-2000:]
        out, err = listener.communicate(timeout=60)
        assert out.strip() == "heard vdione", out + err[-2000:]
        keys = {key.decode() for key in redis.Redis.from_url(with_redis_database(
            f"redis://127.0.0.1:{port}/0")).keys("*group*")}
        assert keys and all(key.startswith(("vdione:", "vditwo:")) for key in keys), keys
    finally:
        server.terminate()
        server.wait(10)

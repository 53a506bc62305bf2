"""Portal under load: N signed-in users with their desktop list open while desktops change.

The portal (``live``): each page loads ``/``, opens ``/ws/live/`` and, told that its desktop
changed, fetches ``/desktops/rows/`` once, 100 ms later (as ``live.js`` does). The peer
(``poll``): the same users, each page loads ``/`` and then GETs ``/desktops/rows/`` every 3 s,
as the page did before #13 (a tick that comes while the last request is still out is
skipped: one connection per page). Same users, same daphne, same run, live first.

For each mode: the pages open (20 at a time, each following its desktop as soon as it is open;
they close 20 at a time at the end); then ``--seconds`` with pages open and the bench
moving desktops through running -> stopping -> stopped -> starting with
``vdi.state.compare_and_set`` (``--changes-per-second`` in all, never a desktop whose last
change its page has not shown yet): rows requests, change -> websocket message, change -> the
page's rows show the new state, the web process's CPU and memory, the generator's own CPU;
then ``--seconds`` more with 2 closed-loop page clients (``GET /``) and 2 API clients
(``GET /api/desktops/`` with personal read tokens) on top: what is left for real work.
Before both, the rows endpoint's capacity at 20 closed-loop sessions, against the issue's
baseline (66 requests/s before #13). CPU is % of one core; the machine's 2 cores are shared
by daphne, Redis and this generator.

No guest is booted and no worker runs: users, a pool and one running desktop row per user are
made in the bench's own database (``/var/lib/vdi-portal/bench-load``), sessions with
``force_login`` (no password hashing), the channel layer is the Redis of ``REDIS_URL``.

Usage: REDIS_URL=redis://:PASSWORD@127.0.0.1:6379/9 .venv/bin/python bench/portal_load.py
       [--users 500] [--seconds 30] [--changes-per-second 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup_django import configure  # noqa: E402

os.environ.setdefault("VDI_REDIS_KEY_PREFIX", "vdibench-load")
configure("bench-load")

import redis  # noqa: E402
import uvloop  # noqa: E402
import websockets  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from vdi.choices import DesktopStatus, ImageStatus  # noqa: E402
from vdi.live.events import user_group  # noqa: E402
from vdi.models import Desktop, GoldenImage, ImageVersion, Pool  # noqa: E402
from vdi.services import tokens  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.state import compare_and_set  # noqa: E402
from vdi.testing.processes import ServerProcess  # noqa: E402

PREFIX = "load-"
POLL_SECONDS = 3.0
DEBOUNCE = 0.1  # live.js: one refresh per burst of changes, 100 ms after the first
OPENING = 20  # pages opened at a time; also the "20 concurrent sessions"
PROBES = 2  # closed-loop clients each for the page and the API in the probe phase
CYCLE = {DesktopStatus.RUNNING: DesktopStatus.STOPPING,
         DesktopStatus.STOPPING: DesktopStatus.STOPPED,
         DesktopStatus.STOPPED: DesktopStatus.STARTING,
         DesktopStatus.STARTING: DesktopStatus.RUNNING}


# --- the bench's users, desktops, sessions and tokens ----------------------------------------

@dataclass
class Persona:
    user_id: int
    desktop_id: int
    cookie: str  # the Cookie header of its signed-in browser
    token: str  # a personal API token with the read scope
    status: DesktopStatus = DesktopStatus.RUNNING


def personas(count: int) -> list[Persona]:
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # the page's static URLs
    host = ensure_local_host()
    image, _ = GoldenImage.objects.get_or_create(name="load-bench")
    version, _ = ImageVersion.objects.get_or_create(
        image=image, number=1, defaults={
            "disk_path": "/nonexistent/load-bench.qcow2", "size_bytes": 0,
            "virtual_size_bytes": 0, "sha256": "0" * 64, "status": ImageStatus.READY})
    pool, _ = Pool.objects.update_or_create(
        name="Load bench", defaults={"image": image, "min_ready": 0, "max_size": 1000})
    Desktop.objects.filter(pool=pool).delete()
    User.objects.filter(username__startswith=PREFIX).delete()
    users = User.objects.bulk_create(
        [User(username=f"{PREFIX}{i:04d}", password=make_password(None)) for i in range(count)])
    pool.users.add(*users)
    desktops = Desktop.objects.bulk_create([
        Desktop(owner=user, pool=pool, host=host, image_version=version,
                domain_name=f"vdibench-load-{user.pk}", disk_path="/nonexistent",
                serial_log_path="/nonexistent", vcpus=1, memory_mib=256,
                status=DesktopStatus.RUNNING) for user in users])
    result = []
    for user, desktop in zip(users, desktops, strict=True):
        client = Client()
        client.force_login(user)
        name = settings.SESSION_COOKIE_NAME
        cookie = f"{name}={client.cookies[name].value}"
        key = tokens.make(user, "load bench", ["read"], 1).key
        result.append(Persona(user.pk, desktop.pk, cookie, key))
    return result


# --- a lean client: one keep-alive HTTP/1.1 connection per page ------------------------------

class Http:
    """One persistent connection, as a browser tab keeps one; reopened once if the server
    closed it while idle."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, header: str) -> tuple[int, bytes]:
        request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{header}\r\n"
                   "Accept: text/html,application/json\r\n\r\n").encode()
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.writer is not None
            try:
                self.writer.write(request)
                return await self._response()
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        assert self.reader is not None
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:  # chunked
            parts = []
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size + 2))
            await self.reader.readuntil(b"\r\n")
            body = b"".join(part[:-2] for part in parts)
        if headers.get("connection") == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


# --- what one mode records -------------------------------------------------------------------

@dataclass
class Run:
    """Samples in seconds by name, per phase; changes made and not yet shown, by desktop."""

    phase: str = "open"
    samples: dict[str, list[float]] = field(default_factory=dict)
    pending: dict[int, tuple[float, str]] = field(default_factory=dict)
    made: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def add(self, name: str, value: float) -> None:
        self.samples.setdefault(f"{self.phase} {name}", []).append(value)

    def get(self, name: str) -> list[float]:
        return self.samples.get(name, [])

    def error(self, what: str) -> None:
        if len(self.errors) < 1000:
            self.errors.append(f"{self.phase}: {what}")


async def timed_get(run: Run, http: Http, name: str, path: str, header: str) -> bytes:
    start = time.perf_counter()
    status, body = await http.get(path, header)
    run.add(name, time.perf_counter() - start)
    if status != 200:
        run.error(f"{path} answered {status}")
    return body


def shown(run: Run, persona: Persona, body: bytes, name: str) -> None:
    """If the rows show the change made to this page's desktop, its latency."""
    change = run.pending.get(persona.desktop_id)
    if change is None:
        return
    made_at, status = change
    if f'id="desktop-{persona.desktop_id}" data-status="{status}"'.encode() in body:
        run.add(name, time.perf_counter() - made_at)
        del run.pending[persona.desktop_id]


# --- the pages -------------------------------------------------------------------------------

@dataclass
class Gates:
    """Pages open, and later close, OPENING at a time; ``all_open`` once every page tried."""

    left: int
    opening: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(OPENING))
    closing: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(OPENING))
    all_open: asyncio.Event = field(default_factory=asyncio.Event)

    def tried(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.all_open.set()


async def page(run: Run, server: ServerProcess, persona: Persona, live: bool,
               gates: Gates) -> None:
    """One browser tab: loads ``/`` (and opens ``/ws/live/``), then follows its desktop as
    the live page or the polling page does, until cancelled; then closes."""
    http, ws = Http(server.port), None
    try:
        try:
            async with gates.opening:
                await timed_get(run, http, "page", "/", f"Cookie: {persona.cookie}")
                if live:
                    ws = await websockets.connect(
                        f"ws://127.0.0.1:{server.port}/ws/live/", compression=None,
                        ping_interval=None, open_timeout=60,
                        additional_headers={"Origin": server.origin, "Cookie": persona.cookie})
        finally:
            gates.tried()
        if ws is not None:
            await live_page(run, http, ws, persona)
        else:
            await poll_page(run, http, persona)
    finally:
        http.close()
        if ws is not None:  # not all at once: see the report's note on mass disconnects
            async with gates.closing:
                await ws.close()


async def live_page(run: Run, http: Http, ws: websockets.ClientConnection,
                    persona: Persona) -> None:
    """Hears a change, waits live.js's 100 ms, fetches the rows once."""
    while True:
        await ws.recv()
        change = run.pending.get(persona.desktop_id)
        if change is not None:
            run.add("push", time.perf_counter() - change[0])
        await asyncio.sleep(DEBOUNCE)
        body = await timed_get(run, http, "rows", "/desktops/rows/", f"Cookie: {persona.cookie}")
        shown(run, persona, body, "shown")


async def poll_page(run: Run, http: Http, persona: Persona) -> None:
    """GETs the rows every 3 s on a fixed schedule from a random start, skipping late ticks."""
    loop = asyncio.get_running_loop()
    tick = loop.time() + random.uniform(0, POLL_SECONDS)
    while True:
        await asyncio.sleep(max(0.0, tick - loop.time()))
        body = await timed_get(run, http, "rows", "/desktops/rows/", f"Cookie: {persona.cookie}")
        shown(run, persona, body, "shown")
        while tick <= loop.time():
            tick += POLL_SECONDS


async def changer(run: Run, people: list[Persona], per_second: float,
                  executor: ThreadPoolExecutor) -> None:
    """Moves a random desktop one step along CYCLE, ``per_second`` times a second in all,
    never one whose last change its page has not shown yet."""
    loop = asyncio.get_running_loop()
    tick = loop.time()
    while True:
        tick += 1 / per_second
        await asyncio.sleep(max(0.0, tick - loop.time()))
        free = [p for p in people if p.desktop_id not in run.pending]
        if not free:
            continue
        persona = random.choice(free)
        new = CYCLE[persona.status]
        run.pending[persona.desktop_id] = (time.perf_counter(), new)
        if not await loop.run_in_executor(executor, compare_and_set, persona.desktop_id,
                                          {persona.status}, new):
            run.error(f"desktop {persona.desktop_id} was not {persona.status}")
        persona.status = new
        run.made[run.phase] = run.made.get(run.phase, 0) + 1


async def closed_loop(run: Run, server: ServerProcess, name: str, path: str,
                      headers: list[str]) -> None:
    """Requests back to back on one connection, each as the next user."""
    http = Http(server.port)
    for index in range(10 ** 9):
        await timed_get(run, http, name, path, headers[index % len(headers)])


# --- accounting ------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def window(run: Run, phase: str, seconds: float, pid: int,
                 extra: Callable[[], list[Awaitable[None]]] = lambda: []) -> None:
    """Runs ``seconds`` of ``phase`` (with ``extra`` tasks), recording CPU and wall time."""
    run.phase = phase
    tasks = [asyncio.ensure_future(job) for job in extra()]
    web, own, start = cpu_seconds(pid), own_cpu_seconds(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - start
    run.add("wall", wall)
    run.add("web cpu", (cpu_seconds(pid) - web) / wall)
    run.add("own cpu", (own_cpu_seconds() - own) / wall)
    run.add("rss", rss_mib(pid))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def guarded(run: Run, job: Awaitable[None]) -> None:
    try:
        await job
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        run.error(f"{type(exc).__name__}: {exc}")


async def mode(live: bool, server: ServerProcess, people: list[Persona], args: argparse.Namespace,
               executor: ThreadPoolExecutor) -> Run:
    run, pid = Run(), server.process.pid
    run.add("rss", rss_mib(pid))
    gates = Gates(len(people))
    start = time.perf_counter()
    pages = [asyncio.ensure_future(guarded(run, page(run, server, p, live, gates)))
             for p in people]
    await gates.all_open.wait()
    run.add("wall", time.perf_counter() - start)
    cookies = [f"Cookie: {p.cookie}" for p in people]
    bearers = [f"Authorization: Bearer {p.token}" for p in people]

    def changes() -> list[Awaitable[None]]:
        return [changer(run, people, args.changes_per_second, executor)]

    def probes() -> list[Awaitable[None]]:
        return changes() + [
            guarded(run, closed_loop(run, server, name, path, headers))
            for name, path, headers in (("page", "/", cookies),
                                        ("api", "/api/desktops/", bearers))
            for _ in range(PROBES)]

    await window(run, "steady", args.seconds, pid, changes)
    await window(run, "probe", args.seconds, pid, probes)
    now = time.perf_counter()
    run.made["lost"] = sum(now - made_at > 2 * POLL_SECONDS for made_at, _ in run.pending.values())
    run.phase = "closing"
    for task in pages:
        task.cancel()
    await asyncio.gather(*pages, return_exceptions=True)
    return run


def left_in_groups(people: list[Persona]) -> int:
    """Memberships of the closed pages still in the layer's user groups (a consumer that
    could not leave its group on disconnect), then removed: they are the bench's."""
    layer = get_channel_layer()
    keys = [f"{layer.prefix}:group:{user_group(p.user_id)}" for p in people]
    client = redis.Redis.from_url(settings.REDIS_URL)
    with client.pipeline() as pipe:
        for key in keys:
            pipe.zcard(key)
        count = sum(int(n) for n in pipe.execute())
    client.delete(*keys)
    client.close()
    return count


async def capacity(server: ServerProcess, people: list[Persona], seconds: float) -> Run:
    """The rows endpoint at OPENING closed-loop sessions, nothing else running."""
    run = Run()
    cookies = [f"Cookie: {p.cookie}" for p in people]
    jobs: list[Awaitable[None]] = [guarded(run, closed_loop(run, server, "rows", "/desktops/rows/",
                                     cookies[i:] + cookies[:i])) for i in range(OPENING)]
    await window(run, "capacity", seconds, server.process.pid, lambda: jobs)
    return run


# --- the report ------------------------------------------------------------------------------

def rate(run: Run, phase: str, name: str) -> float:
    wall = run.get(f"{phase} wall")
    return len(run.get(f"{phase} {name}")) / wall[0] if wall else 0.0


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


Row = tuple[str, Callable[[Run], float]]


def phase_rows(phase: str, label: str) -> list[Row]:
    return [
        (f"{label}: rows GET /desktops/rows/ req/s", lambda r: rate(r, phase, "rows")),
        (f"{label}: rows p95 ms", lambda r: pct(r.get(f"{phase} rows"), 95)),
        (f"{label}: change -> websocket p50 ms", lambda r: pct(r.get(f"{phase} push"), 50)),
        (f"{label}: change -> websocket p95 ms", lambda r: pct(r.get(f"{phase} push"), 95)),
        (f"{label}: change -> rows show it p50 ms", lambda r: pct(r.get(f"{phase} shown"), 50)),
        (f"{label}: change -> rows show it p95 ms", lambda r: pct(r.get(f"{phase} shown"), 95)),
        (f"{label}: changes made", lambda r: r.made.get(phase, 0)),
        (f"{label}: web CPU %", lambda r: r.get(f"{phase} web cpu")[0] * 100),
        (f"{label}: generator CPU %", lambda r: r.get(f"{phase} own cpu")[0] * 100),
    ]


ROWS: list[Row] = [
    ("open: pages/s (GET /; live: + websocket)", lambda r: rate(r, "open", "page")),
    ("open: page GET / p95 ms", lambda r: pct(r.get("open page"), 95)),
    *phase_rows("steady", "pages open"),
    *phase_rows("probe", "+ probes"),
    ("+ probes: page GET / req/s", lambda r: rate(r, "probe", "page")),
    ("+ probes: page GET / p95 ms", lambda r: pct(r.get("probe page"), 95)),
    ("+ probes: API GET /api/desktops/ req/s", lambda r: rate(r, "probe", "api")),
    ("+ probes: API p95 ms", lambda r: pct(r.get("probe api"), 95)),
    ("web RSS MiB at the end", lambda r: r.get("probe rss")[0]),
    ("web RSS MiB growth in the mode",
     lambda r: r.get("probe rss")[0] - r.get("open rss")[0]),
    ("closed pages still in their group", lambda r: r.made.get("left", 0)),
    ("changes not shown within 2 polls", lambda r: r.made.get("lost", 0)),
    ("errors", lambda r: len(r.errors)),
]


def cell(value: float) -> str:
    return f"{value:8.1f}" if value == value else "       -"  # NaN: nothing to measure


def report(base: Run, live: Run, poll: Run, args: argparse.Namespace) -> None:
    capacity_rate = rate(base, "capacity", "rows")
    print(f"\nportal load: {args.users} signed-in users with the desktop list open, "
          f"{args.changes_per_second:g} desktop state changes/s, {args.seconds:g} s a phase; "
          "live = /ws/live/ + one rows fetch per change (the portal), poll = GET "
          "/desktops/rows/ every 3 s (the peer: the page before #13); one daphne, same run")
    print(f"rows endpoint alone at {OPENING} closed-loop sessions: {capacity_rate:.0f} req/s, "
          f"p95 {pct(base.get('capacity rows'), 95):.0f} ms, web CPU "
          f"{base.get('capacity web cpu')[0] * 100:.0f} %, generator CPU "
          f"{base.get('capacity own cpu')[0] * 100:.0f} % (issue #13 before: 66 req/s, so "
          f"~200 polling pages a daphne; now ~{capacity_rate * POLL_SECONDS:.0f})")
    print("| metric                                       |     live |     poll | live / poll |")
    print("|----------------------------------------------|----------|----------|-------------|")
    for name, metric in ROWS:
        a, b = metric(live), metric(poll)
        ratio = f"{a / b:11.2f}" if b and a == a and b == b else "          -"
        print(f"| {name:<44} | {cell(a)} | {cell(b)} | {ratio} |")
    for label, run in (("live", live), ("poll", poll)):
        for line in sorted(set(run.errors))[:5]:
            print(f"{label} error: {line}")


async def main_async(args: argparse.Namespace, people: list[Persona],
                     server: ServerProcess) -> tuple[Run, Run, Run]:
    with ThreadPoolExecutor(1, thread_name_prefix="changer") as executor:
        base = await capacity(server, people, min(args.seconds, 10.0))
        live = await mode(True, server, people, args, executor)
        await asyncio.sleep(2)  # the closed websockets leave their groups
        live.made["left"] = await asyncio.to_thread(left_in_groups, people)
        poll = await mode(False, server, people, args, executor)
    return base, live, poll


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument("--changes-per-second", type=float, default=10.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # daphne inherits it
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(f"making {args.users} users, desktops, sessions and tokens...", flush=True)
    people = personas(args.users)
    server = ServerProcess(settings.DATA_DIR / "bench-load-daphne.log")
    server.start()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            base, live, poll = runner.run(main_async(args, people, server))
    finally:
        server.stop()
    report(base, live, poll, args)


if __name__ == "__main__":
    main()

"""Console proxy speed: direct TCP, websockify, the portal's consumer under daphne and uvicorn;
then SPICE against QEMU's real SPICE server (bench/spice_paths.py).

One local TCP source plays the VNC server: after an RFB client handshake, a
FramebufferUpdateRequest makes it stream bytes as fast as it can, and 16-byte ClientCutText
messages are echoed (the portal's proxy passes only well-formed RFB client messages). Each
path is measured in the same run: throughput source -> browser, 16-byte
round-trip latency (p50, p99), proxy CPU seconds per GB, and the proxy's memory growth while a
browser reads nothing and the source pours. Ratios are against websockify.

Usage: .venv/bin/python bench/console_proxy.py [--megabytes 256] [--pings 2000]
       [--spice-sessions 10] [--skip-spice]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup_django import configure  # noqa: E402

os.environ.setdefault("VDI_CONSOLE_RATE_LIMIT", "10000/m/ip,10000/m/user")  # many connects
configure()

import websockets  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from bench.process_tree import tree_cpu_seconds, tree_rss_kib  # noqa: E402
from bench.spice_paths import (  # noqa: E402
    SpicePath,
    Stream,
    measure_spice,
    report_spice,
    tcp_stream,
)
from tests.service_fixtures import give_database_to_service_user  # noqa: E402
from vdi.choices import DesktopStatus, DisplayProtocol  # noqa: E402
from vdi.models import Desktop, GoldenImage, Pool  # noqa: E402
from vdi.services.console import issue_ticket  # noqa: E402
from vdi.services.hosts import ensure_local_host  # noqa: E402
from vdi.services.spice import issue_native_ticket  # noqa: E402
from vdi.testing.processes import ServerProcess, free_port, listening, wait_for  # noqa: E402
from vdi.testing.spice_server import SpiceServer, spice_server  # noqa: E402

CHUNK = 64 * 1024


# --- the source (a separate process, so it does not share the client's CPU) -----------------

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x01"  # version, security None, ClientInit
START = struct.pack("!BBHHHH", 3, 0, 0, 0, 640, 480)  # FramebufferUpdateRequest: pour
PING = struct.pack("!BxxxI", 6, 8) + b"01234567"  # a 16-byte ClientCutText: echoed


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, total: int) -> None:
    """Speaks just enough RFB for the portal's client filter to pass the client's bytes: after
    the handshake, a FramebufferUpdateRequest starts the pour, a cut text is echoed."""
    try:
        await reader.readexactly(len(HANDSHAKE))
        kind = await reader.readexactly(1)
    except asyncio.IncompleteReadError:
        return  # a readiness probe
    if kind == START[:1]:
        block, sent = b"\x42" * CHUNK, 0
        try:
            while sent < total:
                writer.write(block)
                await writer.drain()
                sent += CHUNK
        except ConnectionError:
            pass
    else:
        message = kind + await reader.readexactly(len(PING) - 1)
        try:
            while True:
                writer.write(message)
                await writer.drain()
                message = await reader.readexactly(len(PING))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
    writer.close()


def source_main(port: int, total: int) -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: _serve(r, w, total), "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(run())


# --- clients --------------------------------------------------------------------------------

@dataclass
class Channel:
    send: Callable[[bytes], Awaitable[None]]
    recv: Callable[[], Awaitable[bytes]]
    close: Callable[[], Awaitable[None]]


async def tcp_channel(port: int) -> Channel:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def close() -> None:
        writer.close()

    return Channel(send, lambda: reader.read(CHUNK), close)


async def ws_channel(url: str, protocols: list[str], headers: dict[str, str]) -> Channel:
    ws = await websockets.connect(url, subprotocols=protocols,  # type: ignore[arg-type]
                                  additional_headers=headers, max_size=None, compression=None)

    async def recv() -> bytes:
        data = await ws.recv()
        return data if isinstance(data, bytes) else data.encode()

    async def send(data: bytes) -> None:
        await ws.send(data)

    return Channel(send, recv, ws.close)


async def throughput(open_channel: Callable[[], Awaitable[Channel]], total: int) -> float:
    channel = await open_channel()
    await channel.send(HANDSHAKE + START)
    received, start = 0, time.perf_counter()
    while received < total:
        try:
            data = await channel.recv()
        except Exception as exc:
            raise RuntimeError(f"connection ended after {received} of {total} bytes") from exc
        if not data:
            break
        received += len(data)
    elapsed = time.perf_counter() - start
    await channel.close()
    return received / elapsed / 1e6


async def latency(open_channel: Callable[[], Awaitable[Channel]], pings: int) -> list[float]:
    channel = await open_channel()
    await channel.send(HANDSHAKE)
    samples = []
    for _ in range(pings):
        start = time.perf_counter()
        await channel.send(PING)
        got = b""
        while len(got) < len(PING):
            got += await channel.recv()
        samples.append((time.perf_counter() - start) * 1e6)
    await channel.close()
    return samples


async def stalled(
    open_channel: Callable[[], Awaitable[Channel]], pid: int, seconds: float
) -> float:
    """Peak growth (MiB) of the proxy's memory while the browser reads nothing."""
    base = tree_rss_kib(pid)
    channel = await open_channel()
    await channel.send(HANDSHAKE + START)
    peak, deadline = base, time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, tree_rss_kib(pid))
        await asyncio.sleep(0.05)
    await channel.close()
    return (peak - base) / 1024


# --- the paths ------------------------------------------------------------------------------

@dataclass
class Path_:
    name: str
    pid: int | None
    open: Callable[[], Awaitable[Channel]]


def portal_desktop(source_port: int, name: str = "vdibench-console", password: str = "",
                   protocol: str = DisplayProtocol.VNC) -> tuple[User, Desktop, str]:
    call_command("migrate", verbosity=0)
    call_command("build_tiny_image", "--if-missing", verbosity=0)
    host = ensure_local_host()
    image = GoldenImage.objects.get(name="tiny")
    pool, _ = Pool.objects.get_or_create(name="Bench", defaults={"image": image})
    user, _ = User.objects.get_or_create(username="bench-console")
    Desktop.objects.filter(domain_name=name).delete()
    version = image.latest_ready_version()
    assert version is not None
    desktop = Desktop.objects.create(
        owner=user, pool=pool, host=host, image_version=version,
        domain_name=name, disk_path="/nonexistent", serial_log_path="/nonexistent",
        vcpus=1, memory_mib=256, status=DesktopStatus.RUNNING, vnc_host="127.0.0.1",
        vnc_port=source_port, vnc_password=password, display_protocol=protocol,
    )
    client = Client()
    client.force_login(user)
    return user, desktop, str(client.cookies["sessionid"].value)


def portal_opener(server: ServerProcess, user: User, desktop: Desktop, session: str
                  ) -> Callable[[], Awaitable[Channel]]:
    async def open_channel() -> Channel:
        ticket = await asyncio.to_thread(lambda: issue_ticket(user, session, desktop).ticket)
        return await ws_channel(
            f"ws://127.0.0.1:{server.port}/ws/desktops/{desktop.pk}/console/",
            ["binary", f"vdi-ticket.{ticket}"],
            {"Origin": server.origin, "Cookie": f"sessionid={session}"},
        )

    return open_channel


def start_websockify(source_port: int, web: Path | None = None
                     ) -> tuple[subprocess.Popen[bytes], int]:
    """websockify in front of ``source_port``; with ``web``, it serves that folder too."""
    port = free_port()
    serve = ["--web", str(web)] if web is not None else []
    process = subprocess.Popen(
        [sys.executable, "-m", "websockify", *serve, f"127.0.0.1:{port}",
         f"127.0.0.1:{source_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    wait_for(lambda: listening(port), 20, "websockify")
    return process, port


async def measure(path: Path_, megabytes: int, pings: int) -> dict[str, float]:
    total = megabytes * 1024 * 1024
    cpu_before = tree_cpu_seconds(path.pid) if path.pid else 0.0
    runs = [await throughput(path.open, total) for _ in range(3)]
    cpu = (tree_cpu_seconds(path.pid) - cpu_before) if path.pid else 0.0
    samples = await latency(path.open, pings)
    result = {
        "MB/s": statistics.median(runs),
        "p50 us": statistics.median(samples),
        "p99 us": statistics.quantiles(samples, n=100)[98],
        "cpu s/GB": cpu / (3 * total / 1e9) if path.pid else 0.0,
        "stall MiB": await stalled(path.open, path.pid, 3.0) if path.pid else 0.0,
    }
    return result


def report(results: dict[str, dict[str, float]]) -> None:
    peer = results["websockify"]
    print("\nconsole proxy benchmark (peer = websockify from PyPI, same run, same source)")
    print("| path                | MB/s   | x peer | p50 us | x peer | p99 us | x peer | "
          "cpu s/GB | x peer | stall MiB |")
    print("|---------------------|--------|--------|--------|--------|--------|--------|"
          "----------|--------|-----------|")
    for name, r in results.items():
        def ratio(key: str, r: dict[str, float] = r) -> str:
            return f"{r[key] / peer[key]:6.2f}" if peer[key] else "   -  "
        print(f"| {name:<19} | {r['MB/s']:6.0f} | {ratio('MB/s')} | {r['p50 us']:6.0f} | "
              f"{ratio('p50 us')} | {r['p99 us']:6.0f} | {ratio('p99 us')} | "
              f"{r['cpu s/GB']:8.2f} | {ratio('cpu s/GB')} | {r['stall MiB']:9.1f} |")


def spice_paths(qemu: SpiceServer, daphne: ServerProcess, gateway: ServerProcess,
                websockify_port: int) -> list[SpicePath]:
    user, desktop, session = portal_desktop(qemu.port, "vdibench-spice", qemu.password,
                                            DisplayProtocol.SPICE)

    async def real_password() -> str:
        return qemu.password

    async def browser_ticket() -> str:
        return await asyncio.to_thread(lambda: issue_ticket(user, session, desktop).ticket)

    async def vv_ticket() -> str:
        return await asyncio.to_thread(
            lambda: issue_native_ticket(user, session, desktop).ticket)

    async def over_ws(url: str, headers: dict[str, str]) -> Stream:
        channel = await ws_channel(url, ["binary"], headers)
        return Stream(channel.send, channel.recv, channel.close)

    portal_url = f"ws://127.0.0.1:{daphne.port}/ws/desktops/{desktop.pk}/spice/"
    portal_headers = {"Origin": daphne.origin, "Cookie": f"sessionid={session}"}
    return [
        SpicePath("direct TCP", None, lambda: tcp_stream("127.0.0.1", qemu.port),
                  real_password),
        SpicePath("websockify", None, lambda: over_ws(f"ws://127.0.0.1:{websockify_port}/", {}),
                  real_password),
        SpicePath("portal on daphne", None, lambda: over_ws(portal_url, portal_headers),
                  browser_ticket),
        SpicePath("portal gateway (.vv)", None, lambda: tcp_stream(
            "127.0.0.1", gateway.port, f"desktop-{desktop.pk}.spice:5900"), vv_ticket),
    ]


def bench_spice(sessions: int, pings: int) -> None:
    with spice_server() as qemu:
        websockify, ws_port = start_websockify(qemu.port)
        daphne = ServerProcess(Path("/tmp/bench-spice-daphne.log"))
        gateway = ServerProcess(Path("/tmp/bench-spice-gateway.log"), server="spice_gateway")
        daphne.start()
        gateway.start()
        try:
            results = {path.name: asyncio.run(measure_spice(path, sessions, pings))
                       for path in spice_paths(qemu, daphne, gateway, ws_port)}
        finally:
            os.killpg(websockify.pid, signal.SIGTERM)
            daphne.stop()
            gateway.stop()
    report_spice(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--spice-sessions", type=int, default=10)
    parser.add_argument("--skip-spice", action="store_true")
    parser.add_argument("--only-spice", action="store_true")
    args = parser.parse_args()
    if not args.only_spice:
        bench_vnc(args)
    if not args.skip_spice:
        bench_spice(args.spice_sessions, args.pings)


def bench_vnc(args: argparse.Namespace) -> None:
    source_port = free_port()
    source = multiprocessing.Process(target=source_main,
                                     args=(source_port, args.megabytes * 1024 * 1024 * 4),
                                     daemon=True)
    source.start()
    wait_for(lambda: listening(source_port), 10, "the source")
    user, desktop, session = portal_desktop(source_port)
    give_database_to_service_user()  # the servers run as the service user, as in the product
    websockify, ws_port = start_websockify(source_port)
    servers = {name: ServerProcess(Path(f"/tmp/bench-{name}.log"), server=name)
               for name in ("daphne", "uvicorn")}
    for server in servers.values():
        server.start()
    paths = [
        Path_("direct TCP", None, lambda: tcp_channel(source_port)),
        Path_("websockify", websockify.pid, lambda: ws_channel(
            f"ws://127.0.0.1:{ws_port}/", ["binary"], {})),
    ] + [
        Path_(f"portal on {name}", server.process.pid if server.process else None,
              portal_opener(server, user, desktop, session))
        for name, server in servers.items()
    ]
    only = os.environ.get("BENCH_ONLY")  # e.g. "portal on daphne,direct TCP"
    if only:
        paths = [p for p in paths if p.name == "websockify" or p.name in only.split(",")]
    results = {}
    try:
        for path in paths:
            results[path.name] = asyncio.run(measure(path, args.megabytes, args.pings))
    finally:
        os.killpg(websockify.pid, signal.SIGTERM)
        for server in servers.values():
            server.stop()
        source.terminate()
    report(results)


if __name__ == "__main__":
    main()

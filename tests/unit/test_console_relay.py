"""A browser that stops reading must not make the relay buffer the VNC stream."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync

from vdi.console.flow import Flow, server_protocol
from vdi.console.relay import LIMIT, Counters, connect_vnc, pump_to_browser

CHUNK = 64 * 1024

TOTAL = 32 * 1024 * 1024


async def slow_reader_scenario() -> tuple[int, int, int]:
    sent = 0

    async def source(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        block = b"\xaa" * CHUNK
        while sent < TOTAL:
            writer.write(block)
            await writer.drain()  # blocks once the relay stops reading
            sent += len(block)
        writer.close()

    server = await asyncio.start_server(source, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    vnc = await connect_vnc("127.0.0.1", port)
    flow, counters = Flow(), Counters()

    async def browser(data: bytes) -> None:
        flow.pauseProducing()  # the browser's socket buffer is full after the first chunk

    pump = asyncio.create_task(pump_to_browser(vnc, browser, flow, counters))
    await asyncio.sleep(1.0)
    forwarded_while_paused = counters.to_browser
    source_sent_while_paused = sent

    received = 0

    async def fast_browser(data: bytes) -> None:
        nonlocal received
        received += len(data)

    pump.cancel()
    flow.resumeProducing()
    rest = asyncio.create_task(pump_to_browser(vnc, fast_browser, flow, Counters()))
    await asyncio.wait_for(rest, 30)
    vnc.close()
    server.close()
    return forwarded_while_paused, source_sent_while_paused, forwarded_while_paused + received


def test_paused_browser_stops_the_reads():
    forwarded, source_sent, total = async_to_sync(slow_reader_scenario)()
    assert forwarded <= LIMIT, "nothing more is read while the browser side is paused"
    assert source_sent < 16 * 1024 * 1024, "the source is held back by TCP, not buffered here"
    assert total == TOTAL, "once resumed, the whole stream flows, nothing lost"


def test_flow_pauses_and_resumes():
    flow = Flow()
    assert not flow.paused
    flow.pauseProducing()
    assert flow.paused and flow.pauses == 1
    flow.resumeProducing()
    assert not flow.paused
    flow.pauseProducing()
    flow.stopProducing()
    assert not flow.paused, "a stopped producer never leaves the relay waiting"


def test_only_daphne_like_sends_yield_a_protocol():
    import functools

    class Transport:
        producer = None

        def registerProducer(self, producer, streaming):
            self.producer = producer

        def unregisterProducer(self):
            self.producer = None

    class Protocol:
        def __init__(self):
            self.transport = Transport()

        def registerProducer(self, producer, streaming):
            self.transport.registerProducer(producer, streaming)

    async def handle_reply(protocol, message):
        return None

    protocol = Protocol()
    assert server_protocol(functools.partial(handle_reply, protocol)) is protocol
    assert server_protocol(handle_reply) is None  # type: ignore[arg-type]
    assert not Flow().attach(object())

    flow = Flow()
    assert flow.attach(protocol) and protocol.transport.producer is flow
    flow.detach(protocol)
    assert protocol.transport.producer is None


def test_flow_listens_beside_an_existing_producer():
    class Channel:
        paused = False

        def pauseProducing(self):
            self.paused = True

        def resumeProducing(self):
            self.paused = False

        def stopProducing(self):
            pass

    class Transport:
        def __init__(self, producer):
            self.producer = producer

        def registerProducer(self, producer, streaming):
            raise RuntimeError("already has a producer")

    channel = Channel()
    protocol = type("P", (), {})()
    protocol.transport = Transport(channel)
    flow = Flow()
    assert flow.attach(protocol)
    protocol.transport.producer.pauseProducing()
    assert flow.paused and channel.paused
    protocol.transport.producer.resumeProducing()
    assert not flow.paused and not channel.paused
    flow.detach(protocol)
    assert protocol.transport.producer is channel


def test_vnc_connection_works_under_uvloop():
    """uvicorn runs the consumer on uvloop, whose transports are not asyncio.Transport."""
    import uvloop

    async def scenario() -> bytes:
        async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"RFB 003.008\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(greet, "127.0.0.1", 0)
        vnc = await connect_vnc("127.0.0.1", server.sockets[0].getsockname()[1])
        data = await vnc.read()
        assert await vnc.read() == b""
        server.close()
        return data

    assert uvloop.run(scenario()) == b"RFB 003.008\n"

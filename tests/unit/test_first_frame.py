"""The proxy's own request for the first frame: noVNC's pixel format and encodings, the whole
screen, as well-formed RFB client messages."""

from __future__ import annotations

import struct

from vdi.console import first_frame
from vdi.console.client_filter import ClientStream

SERVER_INIT = struct.pack("!HH", 1280, 800) + b"\x20\x18\x00\x01" + b"\x00" * 12


def test_the_pixel_format_is_novncs_32_bit_true_colour_with_red_lowest():
    (kind, bpp, depth, big_endian, true_colour, red_max, green_max, blue_max,
     red_shift, green_shift, blue_shift) = struct.unpack("!B3xBBBBHHHBBB3x",
                                                        first_frame.PIXEL_FORMAT)
    assert (kind, bpp, depth, big_endian, true_colour) == (0, 32, 24, 0, 1)
    assert (red_max, green_max, blue_max) == (255, 255, 255)
    assert (red_shift, green_shift, blue_shift) == (0, 8, 16)


def test_the_request_is_pixel_format_encodings_and_a_full_screen_update():
    asked = first_frame.request(SERVER_INIT)
    assert asked.startswith(first_frame.PIXEL_FORMAT)
    encodings = asked[len(first_frame.PIXEL_FORMAT):-10]
    kind, count = struct.unpack_from("!BxH", encodings)
    assert kind == 2 and count == len(first_frame.ENCODINGS)
    listed = struct.unpack_from(f"!{count}i", encodings, 4)
    assert listed[:2] == (first_frame.COPY_RECT, first_frame.TIGHT), "Tight, as noVNC prefers"
    assert first_frame.RAW in listed
    pseudo = [encoding for encoding in listed if encoding < 0 and encoding != first_frame.TIGHT_PNG]
    assert pseudo == [first_frame.QUALITY_6, first_frame.COMPRESS_2], \
        "no feature announced: noVNC asks for those itself"
    assert struct.unpack("!BBHHHH", asked[-10:]) == (3, 0, 0, 0, 1280, 800), \
        "not incremental, the whole screen"


def test_the_request_passes_the_proxys_own_filter_whole_even_view_only():
    stream = ClientStream(view_only=True, handshake=0)
    asked = first_frame.request(SERVER_INIT)
    assert stream.feed(asked) == asked
    assert stream.dropped == 0 and stream.full_updates == 1


def test_a_vnc_side_gone_before_the_request_leaves_the_ending_to_the_relay():
    """The request meets a closed connection (the VNC server hung up right after the sign-in):
    nothing raises out of the console's opening; the relay finds the connection closed and
    ends the console as usual."""
    import asyncio

    from vdi.console.relay import Counters, VncConnection
    from vdi.console.relaying import RelayMixin

    async def scenario() -> RelayMixin:
        console = RelayMixin()
        console.vnc, console.counters = VncConnection(), Counters()
        console.vnc.closed = True
        await console.ask_first_frame(SERVER_INIT)
        return console

    console = asyncio.run(scenario())
    assert console.counters is not None and console.counters.to_vnc == 0
    assert not console.woken, "no wake-up for a request that never went"

"""The fast lane's framing, against the ``websockets`` library's own: the frames it takes are
exactly what a browser's client sends, and anything else is left to autobahn."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from vdi.console.lane import frame, read_frames, unmask


def client_frame(data: bytes, opcode: Opcode = Opcode.BINARY, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


def server_frame(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as parsed:
        next(parser)
    assert reader.at_eof(), "bytes left after the frame"
    return parsed.value.value  # type: ignore[no-any-return]


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 8, 125, 126, 127, 1000, 65535])
def test_a_clients_binary_frame_is_read_as_sent(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert read_frames(client_frame(payload)) == [payload]


def test_several_frames_in_one_read_come_out_in_order():
    payloads = [b"\x04\x01\x00\x00\x00\x00\x00a", b"", b"\x05" * 300, b"\x06" * 16]
    assert read_frames(b"".join(client_frame(p) for p in payloads)) == payloads


@pytest.mark.parametrize("case", ["text", "ping", "close", "fragment", "continuation",
                                  "unmasked", "64-bit length", "over the limit"])
def test_anything_but_whole_masked_binary_frames_is_left_to_autobahn(case):
    data = {
        "text": client_frame(b"hello", Opcode.TEXT),
        "ping": client_frame(b"", Opcode.PING),
        "close": client_frame(b"\x03\xe8", Opcode.CLOSE),
        "fragment": client_frame(b"part", fin=False),
        "continuation": client_frame(b"rest", Opcode.CONT),
        "unmasked": Frame(Opcode.BINARY, b"abc").serialize(mask=False),
        "64-bit length": client_frame(b"x" * 65536),
        "over the limit": client_frame(b"x" * 200),
    }[case]
    assert read_frames(client_frame(b"first") + data, limit=100) is None


def test_a_frame_cut_anywhere_is_left_to_autobahn():
    first = client_frame(b"\x04\x01\x00\x00\x00\x00\x00a")
    whole = first + client_frame(b"y" * 200)
    for cut in range(1, len(whole)):
        if cut != len(first):
            assert read_frames(whole[:cut]) is None, f"cut at {cut}"
    assert read_frames(whole) is not None


def test_a_length_not_in_its_shortest_form_is_left_to_autobahn():
    """RFC 6455 wants the minimal encoding; autobahn fails the connection for it."""
    padded = bytes((0x82, 0x80 | 126)) + (5).to_bytes(2, "big") + b"\x00" * 4 + b"hello"
    assert read_frames(padded) is None


def test_unmasking_undoes_the_mask():
    assert unmask(b"\x01\x02\x03\x04", b"") == b""
    assert unmask(b"\xff\x00\xff\x00", b"\x00\x00\x00\x00\x00") == b"\xff\x00\xff\x00\xff"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 300_000])
def test_frames_to_the_browser_parse_as_one_final_binary_frame(size):
    payload = b"\x42" * size
    parsed = server_frame(frame(payload))
    assert (parsed.opcode, parsed.fin, bytes(parsed.data)) == (Opcode.BINARY, True, payload)

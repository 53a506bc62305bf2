"""The desktop's first frame, asked for while the console page's code still loads.

The proxy signs in to the VNC server as soon as the page's socket opens (``vnc_auth``), about
a tenth of a second before noVNC has loaded and can ask for anything. It uses that time: it
asks the server for a full frame itself, in the pixel format and encodings noVNC asks for
(noVNC 1.7, ``_negotiateServerInit`` and ``_sendEncodings`` in core/rfb.js; a browser test
compares them with what the bundled noVNC sends), and the frame goes to the browser after the
greeting. noVNC draws it as soon as it has read the greeting, instead of a round trip later.

The pseudo-encodings that announce features (desktop size, cursor, clipboard, keyboard) are
left to noVNC's own SetEncodings, which follows a moment later; so is its own full-screen
request, which the server answers with a second full frame (a few KB once per console).
"""

from __future__ import annotations

import struct

# SetPixelFormat: 32 bits per pixel, depth 24, little-endian, true colour, 8 bits per channel,
# red in the lowest byte (noVNC's RFB.messages.pixelFormat(sock, 24, true)).
PIXEL_FORMAT = struct.pack("!B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 0, 8, 16)

# noVNC's encodings in its order of preference (H.264 is left out of the bundle), then its
# default quality (6) and compression (2) levels, which decide Tight's JPEG and zlib level.
COPY_RECT, TIGHT, TIGHT_PNG, ZRLE, JPEG, HEXTILE, RRE, ZLIB, RAW = 1, 7, -260, 16, 21, 5, 2, 6, 0
QUALITY_6, COMPRESS_2 = -32 + 6, -256 + 2
ENCODINGS = (COPY_RECT, TIGHT, TIGHT_PNG, ZRLE, JPEG, HEXTILE, RRE, ZLIB, RAW,
             QUALITY_6, COMPRESS_2)


def set_encodings(encodings: tuple[int, ...] = ENCODINGS) -> bytes:
    return struct.pack(f"!BxH{len(encodings)}i", 2, len(encodings), *encodings)


def full_update_request(server_init: bytes) -> bytes:
    """FramebufferUpdateRequest, not incremental, for the whole screen ServerInit gave."""
    width, height = struct.unpack_from("!HH", server_init)
    return struct.pack("!BBHHHH", 3, 0, 0, 0, width, height)


def request(server_init: bytes) -> bytes:
    """What the proxy sends the VNC server right after signing in."""
    return PIXEL_FORMAT + set_encodings() + full_update_request(server_init)

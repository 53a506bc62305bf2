"""GLib key files (remote-viewer's ``.vv``), written so that each value stays one value.

GLib's parser ends a value at a line break and reads the next line as a key or a group of
its own; a key given twice takes its later value. A desktop name holding ``\\nproxy=...``
would so send every user's native client to another proxy. Values are escaped as GLib's
``g_key_file_set_string`` escapes them (and read back unchanged by ``g_key_file_get_string``);
groups and keys are the portal's own and are checked, not escaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]*")
KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def escape(value: str) -> str:
    r"""``value`` as one key-file value: backslashes, line breaks, carriage returns and tabs
    escaped, and a leading space written ``\s`` (the parser skips spaces before a value)."""
    escaped = value.translate(ESCAPES)
    return "\\s" + escaped[1:] if escaped.startswith(" ") else escaped


def write(group: str, entries: Mapping[str, str]) -> str:
    """One group of a key file; a group or key that is not a plain word is a bug."""
    if not GROUP.fullmatch(group):
        raise ValueError(f"not a key-file group name: {group!r}")
    bad = [key for key in entries if not KEY.fullmatch(key)]
    if bad:
        raise ValueError(f"not key-file keys: {bad!r}")
    return f"[{group}]\n" + "".join(f"{key}={escape(value)}\n" for key, value in entries.items())

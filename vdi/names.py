"""What a name may hold: no control characters and no invisible formatting characters.

One rule for every name a person gives (pools, images, hosts, install media, webhooks, file
names in transfers). A line break in a pool's name became extra lines in the ``.vv`` file of
every user's native client; U+202E RIGHT-TO-LEFT OVERRIDE shows ``photo<U+202E>gpj.exe`` as
``photoexe.jpg``. Refused: Unicode's controls (Cc: line breaks, tabs, escape, C1), format
characters (Cf: bidi overrides, embeddings, isolates and marks, zero-width space, soft hyphen,
byte order mark), line and paragraph separators (Zl, Zp) and lone surrogates (Cs).
The zero-width non-joiner and joiner (U+200C, U+200D) stay allowed: Persian, Indic scripts
and emoji sequences need them, and they reorder nothing.
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
ALLOWED = frozenset({"\u200c", "\u200d"})
CONTROL_WORDS = {"\t": "a tab", "\n": "a line break", "\r": "a carriage return",
                 "\x1b": "an escape", "\x00": "a NUL", "\x7f": "a delete",
                 "\x85": "a next-line break"}


def refused_character(text: str) -> str | None:
    """The first character of ``text`` that a name may not hold, described for people
    (``U+202E RIGHT-TO-LEFT OVERRIDE``, ``U+000A (a line break)``); None if there is none."""
    for char in text:
        if unicodedata.category(char) in REFUSED_CATEGORIES and char not in ALLOWED:
            return describe(char)
    return None


def shown(text: str) -> str:
    """``text`` as it may be shown: each refused character written as its code point
    (``photo⟨U+202E⟩gpj.exe``), so a name from elsewhere (a guest's file) reads as it is."""
    return "".join(f"⟨U+{ord(char):04X}⟩" if unicodedata.category(char) in REFUSED_CATEGORIES
                   and char not in ALLOWED else char for char in text)


def describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if char in CONTROL_WORDS:
        return f"{code} ({CONTROL_WORDS[char]})"
    name = unicodedata.name(char, "")
    return f"{code} {name}" if name else f"{code} (a control character)"


def validate_name(value: str) -> None:
    """The validator of every name field: a clear error on forms (and on API serializers
    made from the models) for a name holding a refused character."""
    if (char := refused_character(value)) is not None:
        raise ValidationError(
            "A name may not hold control or invisible formatting characters (line breaks, "
            "tabs, text-direction overrides); this one holds %(char)s.",
            code="unprintable", params={"char": char})

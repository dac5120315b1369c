"""Strict parsing of numbers that arrive as text (query parameters, path segments, headers).

Python's ``int()`` accepts Unicode digits ("٣"), underscores, signs and surrounding spaces, and
spends quadratic time on thousands of digits before refusing them; nothing from a request goes
near it unchecked. Only ASCII digits, of bounded length, are numbers here.
"""

from __future__ import annotations

import re

from server.errors import InvalidParameter

#: 18 digits always fit a signed 64-bit integer; no parameter of ours needs more.
MAX_DIGITS = 18
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}", re.ASCII)
_HEX8 = re.compile(r"[0-9A-Fa-f]{8}", re.ASCII)


def is_digits(text: str) -> bool:
    """ASCII digits only, 1 to MAX_DIGITS of them."""
    return isinstance(text, str) and _DIGITS.fullmatch(text) is not None


def parse_int(
    text: str, name: str, *, minimum: int = 0, maximum: int = 10**MAX_DIGITS - 1
) -> int:
    """`text` as an integer in [minimum, maximum], else InvalidParameter naming `name`."""
    if not is_digits(text):
        raise InvalidParameter(
            f"{name} must be a whole number written in ASCII digits "
            f"(at most {MAX_DIGITS}), got {_shown(text)}"
        )
    value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidParameter(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def parse_hex8(text: str, name: str) -> int:
    """Exactly eight hex digits (a DICOM tag such as 7FE00010)."""
    if not isinstance(text, str) or _HEX8.fullmatch(text) is None:
        raise InvalidParameter(f"{name} must be 8 hex digits, got {_shown(text)}")
    return int(text, 16)


def _shown(text: object) -> str:
    # Echo enough to recognise the value, never a 64 KiB one.
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."

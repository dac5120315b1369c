"""One baseline JPEG from horizontal strips encoded separately, joined by restart markers.

ITU-T T.81 restart intervals (DRI, RSTm) make the entropy-coded data of each interval
independent: the DC predictions reset and the coder byte-aligns with 1-bits, which is exactly
how a separate encode of a strip begins and ends. So strips whose heights are whole MCU rows can
be encoded on different threads (libjpeg-turbo releases the GIL) and concatenated into one
standard JPEG whose decoded pixels are identical to a single encode of the whole image: the
quantised coefficients of every 8x8 block are the same, only the entropy coding is cut into
intervals. Every decoder (browsers, libjpeg, Pillow, pydicom) understands restart markers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
_SOF0, _SOF1, _DHT, _DQT, _DRI, _SOS = 0xC0, 0xC1, 0xC4, 0xDB, 0xDD, 0xDA
#: Restart interval is a 16-bit MCU count (T.81 B.2.4.4).
MAX_RESTART_INTERVAL = 0xFFFF


class StripJoinError(ValueError):
    """Strips that cannot be joined (different tables, not baseline, not whole MCU rows)."""


@dataclass(frozen=True)
class StripPlan:
    """How to cut an image of `rows` x `columns` into strips of whole MCU rows."""

    rows: int
    columns: int
    strip_rows: int  # rows per strip (the last one may be shorter)
    mcu_width: int
    mcu_height: int

    @property
    def restart_interval(self) -> int:
        return -(-self.columns // self.mcu_width) * (self.strip_rows // self.mcu_height)

    def bounds(self) -> list[tuple[int, int]]:
        step = self.strip_rows
        return [(r, min(r + step, self.rows)) for r in range(0, self.rows, step)]


def plan_strips(rows: int, columns: int, strips: int, mcu: tuple[int, int]) -> StripPlan | None:
    """Cut into about `strips` strips, or None when the image is too small to be worth it."""
    mcu_width, mcu_height = mcu
    mcu_rows = -(-rows // mcu_height)
    if strips < 2 or mcu_rows < 2:
        return None
    per_strip = -(-mcu_rows // strips)
    mcus_per_row = -(-columns // mcu_width)
    # A very wide image may need more, thinner strips to keep the interval within 16 bits.
    per_strip = min(per_strip, max(1, MAX_RESTART_INTERVAL // mcus_per_row))
    if mcus_per_row > MAX_RESTART_INTERVAL or per_strip >= mcu_rows:
        return None
    return StripPlan(rows, columns, per_strip * mcu_height, mcu_width, mcu_height)


def _header_segments(jpeg: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """(marker, whole segment bytes) from SOI up to and including SOS, and where data starts."""
    if not jpeg.startswith(SOI) or not jpeg.endswith(EOI):
        raise StripJoinError("not a complete JPEG stream")
    segments: list[tuple[int, bytes]] = []
    pos = 2
    while True:
        if pos + 4 > len(jpeg) or jpeg[pos] != 0xFF:
            raise StripJoinError("malformed JPEG header")
        marker = jpeg[pos + 1]
        (length,) = struct.unpack_from(">H", jpeg, pos + 2)
        end = pos + 2 + length
        segments.append((marker, jpeg[pos:end]))
        if marker == _SOS:
            return segments, end
        if marker == _DRI:
            raise StripJoinError("strip already uses restart intervals")
        pos = end


def _with_height(sof: bytes, rows: int) -> bytes:
    # SOF: FF Cn, Lf(2), P(1), Y(2), X(2), ...
    return sof[:5] + struct.pack(">H", rows) + sof[7:]


def _layout(segments: list[tuple[int, bytes]]) -> list[bytes]:
    return [
        _with_height(segment, 0) if marker in (_SOF0, _SOF1) else segment
        for marker, segment in segments
        if marker in (_SOF0, _SOF1, _DQT, _DHT, _SOS)
    ]


def join_strips(strips: list[bytes], plan: StripPlan) -> bytes:
    """One JPEG of `plan.rows` rows from the separately encoded strips, top to bottom."""
    if len(strips) != len(plan.bounds()):
        raise StripJoinError(f"expected {len(plan.bounds())} strips, got {len(strips)}")
    first, _ = _header_segments(strips[0])
    parts: list[bytes] = [SOI]
    for marker, segment in first:
        if marker in (_SOF0, _SOF1):
            parts.append(_with_height(segment, plan.rows))
        elif marker == _SOS:
            parts.append(b"\xff\xdd\x00\x04" + struct.pack(">H", plan.restart_interval))
            parts.append(segment)
        elif marker >= 0xC2 and marker <= 0xCF and marker not in (_DHT, 0xC8, 0xCC):
            raise StripJoinError("only baseline/extended sequential JPEG can be joined")
        else:
            parts.append(segment)
    for index, jpeg in enumerate(strips):
        segments, data_start = _header_segments(jpeg)
        if index:
            # Same frame layout, quantisation and Huffman tables, or the joined stream would lie.
            if _layout(segments) != _layout(first):
                raise StripJoinError("strips were encoded with different tables")
            parts.append(b"\xff" + bytes([0xD0 + (index - 1) % 8]))
        parts.append(jpeg[data_start:-2])
    parts.append(EOI)
    return b"".join(parts)

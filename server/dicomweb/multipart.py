"""Media types for DICOMweb: Accept negotiation and multipart/related bodies (PS3.18 §8.6-8.7)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from server.errors import NotAcceptable

# RFC 9110 §12.4.2 qvalue; float() would take "nan", "1e9" and Unicode digits.
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?", re.ASCII)


@dataclass(frozen=True)
class MediaRange:
    type: str  # "multipart/related", "image/jpeg", "*/*"
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    def matches(self, media_type: str) -> bool:
        if self.type in ("*/*", media_type):
            return True
        major, _, minor = self.type.partition("/")
        return minor == "*" and media_type.startswith(major + "/")


def parse_params(text: str) -> tuple[str, dict[str, str]]:
    head, *rest = text.split(";")
    params: dict[str, str] = {}
    for item in rest:
        key, sep, value = item.strip().partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return head.strip().lower(), params


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges of an Accept header, best first; an absent header accepts anything."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    # Commas inside quoted parameters (rare) are not split by DICOMweb clients in practice.
    for item in header.split(","):
        if not item.strip():
            continue
        media, params = parse_params(item)
        qtext = params.pop("q", "1")
        # A malformed weight is ignored rather than refused, as browsers' own headers are lax.
        q = float(qtext) if _QVALUE.fullmatch(qtext) else 1.0
        if q > 0:
            ranges.append(MediaRange(media, params, q))
    return sorted(ranges, key=lambda r: -r.q)


def accept_of(request: web.Request) -> str | None:
    """The media types a request accepts: PS3.18 8.3.3.1's `accept` query parameter, for user
    agents that cannot set the header (a browser link), else the Accept header."""
    return request.query.get("accept") or request.headers.get("Accept")


def negotiate(header: str | None, offered: tuple[str, ...]) -> str:
    """The first offered single-part media type the client accepts, else 406."""
    for media_range in parse_accept(header):
        for media_type in offered:
            if media_range.matches(media_type):
                return media_type
    raise NotAcceptable(
        f"cannot answer with any of {header!r}; this resource is available as {', '.join(offered)}"
    )


def negotiate_multipart(header: str | None, part_type: str) -> MediaRange:
    """Accept for `multipart/related; type=<part_type>` resources; returns the matched range."""
    for media_range in parse_accept(header):
        if media_range.type in ("*/*", "multipart/*"):
            return MediaRange("multipart/related", {"type": part_type})
        if media_range.type == "multipart/related":
            wanted = media_range.params.get("type", part_type).lower()
            if wanted == part_type:
                return media_range
        if media_range.type == part_type:
            # Single-part request for a multipart resource: answer multipart (PS3.18 allows it
            # for a single instance); clients that ask this way read the first part.
            return MediaRange("multipart/related", {"type": part_type, **media_range.params})
    raise NotAcceptable(
        f'cannot answer with {header!r}; this resource is multipart/related; type="{part_type}"'
    )


class MultipartWriter:
    """Streams a multipart/related body part by part, so a whole study never sits in memory."""

    def __init__(self, request: web.Request, part_type: str) -> None:
        self.request = request
        self.part_type = part_type
        self.boundary = uuid.uuid4().hex
        self.response = web.StreamResponse(
            headers={
                "Content-Type": f'multipart/related; type="{part_type}"; boundary={self.boundary}',
                "Cache-Control": "no-store",
            }
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self.response.prepare(self.request)
            self._started = True

    async def part(
        self,
        chunks: AsyncIterator[bytes] | bytes,
        *,
        content_type: str | None = None,
        location: str | None = None,
    ) -> None:
        await self.start()
        header = f"\r\n--{self.boundary}\r\nContent-Type: {content_type or self.part_type}\r\n"
        if location:
            header += f"Content-Location: {location}\r\n"
        await self.response.write((header + "\r\n").encode())
        if isinstance(chunks, bytes):
            await self.response.write(chunks)
        else:
            async for chunk in chunks:
                await self.response.write(chunk)

    async def finish(self) -> web.StreamResponse:
        await self.start()
        await self.response.write(f"\r\n--{self.boundary}--\r\n".encode())
        await self.response.write_eof()
        return self.response

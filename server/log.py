"""Structured logging: one event per line, `time level logger event key=value…` (logfmt).

Values come from users (a username from a login body, a path, an SDP line), so every value is
encoded: a plain token (ASCII letters, digits and `._:/@+-,`) stands as it is, anything else is
a JSON string (quotes, backslashes, control characters and Unicode line separators escaped).
A line therefore never contains a newline or an unescaped quote, and nothing a user sends can
forge a field or a whole line; `parse_line` reads a line back. Tracebacks follow on continuation
lines that start with `  | `, which no log line starts with.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9._:/@+,\-]+")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# json.dumps(ensure_ascii=False) leaves these raw; each is a line break to some reader.
_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029", "\x7f": "\\u007f"}
_BREAKS_RE = re.compile("[" + "".join(_BREAKS) + "]")
_FIELD = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]+)')
CONTINUATION = "  | "


def encode_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.fullmatch(text):
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _BREAKS_RE.sub(lambda m: _BREAKS[m.group()], quoted)


def _encode_key(key: str) -> str:
    # Keys come from code (keyword arguments), but a **dict splat could carry anything.
    return key if _KEY.fullmatch(key) else "x_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        message = record.getMessage()
        parts = [
            self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            record.levelname.lower(),
            encode_value(record.name),
        ]
        if _PLAIN.fullmatch(message):
            parts.append(message)  # an event name
        else:
            # A free-text message (a library's log call): as a field, so it is encoded too.
            parts.extend(["message", f"msg={encode_value(message)}"])
        parts.extend(f"{_encode_key(k)}={encode_value(v)}" for k, v in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            for row in trace.splitlines():
                # Escaped like a value, without its quotes: readable, and still one line each.
                encoded = encode_value(row)
                line += "\n" + CONTINUATION + (encoded[1:-1] if encoded[0] == '"' else encoded)
        return line


def parse_line(line: str) -> tuple[str, dict[str, str]]:
    """The event name and fields of one log line (the inverse of the formatter)."""
    head = line.split(" ", 4)
    if len(head) < 4:
        raise ValueError(f"not a log line: {line!r}")
    name, rest = head[3], head[4] if len(head) == 5 else ""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        if rest[pos] == " ":
            pos += 1
            continue
        match = _FIELD.match(rest, pos)
        if match is None:
            raise ValueError(f"unparsable field at {pos}: {rest[pos:]!r}")
        key, raw = match.groups()
        fields[key] = json.loads(raw) if raw.startswith('"') else raw
        pos = match.end()
    return name, fields


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event: `event(log, "study_stored", study=uid, instances=3)`."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields})


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is one line per request; our own events carry what matters.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

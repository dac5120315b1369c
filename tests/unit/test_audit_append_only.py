"""The audit stream is append-only for the application: the only module that touches its key
is server/store/audit.py, and that module only appends and reads (no XTRIM, XDEL, DEL, MAXLEN,
no expiry), so no route, command or service can shorten the trail (docs/deployment.md)."""

from __future__ import annotations

import re
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
_WRITES = re.compile(r"\b(xtrim|xdel|delete|unlink|expire|pexpire|maxlen|minid|rename)\b", re.I)


def test_only_the_audit_store_names_the_stream() -> None:
    users = [p.relative_to(SERVER).as_posix() for p in SERVER.rglob("*.py")
             if re.search(r"keys\.AUDIT\b|[\"']hz:audit[\"']", p.read_text(encoding="utf-8"))]
    assert users == ["store/audit.py"], users


def test_the_audit_store_only_appends_and_reads() -> None:
    text = (SERVER / "store" / "audit.py").read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith("#") and '"""' not in line)
    calls = set(re.findall(r"self\._r\.(\w+)\(", code))
    calls |= set(re.findall(r"redis\.call\('(\w+)'", code))
    assert calls <= {"xadd", "xrange", "xrevrange", "XADD", "XREVRANGE", "register_script"}, calls
    assert not _WRITES.search(code.replace("register_script", ""))

"""The audit stream is append-only for the application: the only module of the server that
touches its key is server/store/audit.py, and that module only appends and reads (no XTRIM, XDEL,
DEL, MAXLEN, no expiry), so no route or service can shorten the trail. The one exception is the
operator's `huizhen audit prune` (server/audit_archive.py), which only the CLI imports
(docs/deployment.md)."""

from __future__ import annotations

import re
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
_WRITES = re.compile(r"\b(xtrim|xdel|delete|unlink|expire|pexpire|maxlen|minid|rename)\b", re.I)


def test_only_the_audit_store_names_the_stream() -> None:
    users = [p.relative_to(SERVER).as_posix() for p in SERVER.rglob("*.py")
             if re.search(r"keys\.AUDIT\b|[\"']hz:audit[\"']", p.read_text(encoding="utf-8"))]
    assert sorted(users) == ["audit_archive.py", "store/audit.py"], users


def test_only_the_cli_imports_the_archive_module() -> None:
    """server/audit_archive.py removes entries: the app (routes, services) never reaches it."""
    users = [p.relative_to(SERVER).as_posix() for p in SERVER.rglob("*.py")
             if re.search(r"^\s*(from \S*audit_archive\b|from server import .*\baudit_archive\b"
                          r"|import \S*audit_archive\b)", p.read_text(encoding="utf-8"), re.M)
             and p.name != "audit_archive.py"]
    assert users == ["cli.py"], users


def test_the_audit_store_only_appends_and_reads() -> None:
    text = (SERVER / "store" / "audit.py").read_text(encoding="utf-8")
    code = "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith("#") and '"""' not in line)
    calls = set(re.findall(r"self\._r\.(\w+)\(", code))
    calls |= set(re.findall(r"redis\.call\('(\w+)'", code))
    assert calls <= {"xadd", "xrange", "xrevrange", "XADD", "XREVRANGE", "register_script"}, calls
    assert not _WRITES.search(code.replace("register_script", ""))

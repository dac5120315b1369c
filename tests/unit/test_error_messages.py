"""Every error code the server can answer has a Chinese and an English text on the pages.

The codes are collected from the server itself, so a code added anywhere (a HuizhenError
subclass, the imaging table, a literal `"code": …` in a JSON body, a WebSocket `error` message, a
per-file upload failure, a STOW FailureReason, a WebSocket close code) fails this test until
client_web/js/messages.js gives it a text in both languages.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import server
from server import errors

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "client_web" / "js" / "messages.js"
# One entry per line: `  "code": { en: "…", zh: "…" },` (the test reads the file as text).
ENTRY = re.compile(r'^\s*"(?P<key>[^"]+)":\s*\{\s*en:\s*"(?P<en>(?:[^"\\]|\\.)*)",\s*'
                   r'zh:\s*"(?P<zh>(?:[^"\\]|\\.)*)"\s*\},?\s*$')
HAN = re.compile(r"[\u4e00-\u9fff]")


def catalogue() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    text = CATALOGUE.read_text(encoding="utf-8")
    body = text.split("const ERRORS = {", 1)[1].split("\n};", 1)[0]
    entries = 0
    for line in body.splitlines():
        if line.strip().startswith("//"):
            continue
        if re.search(r"\ben:\s*\"", line):
            entries += 1
            m = ENTRY.match(line)
            assert m, f"messages.js: not in the one-entry-per-line form: {line.strip()}"
            assert m["key"] not in out, f"messages.js: {m['key']} twice"
            out[m["key"]] = (m["en"], m["zh"])
    assert entries == len(out) and entries > 20
    return out


def _walk_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _walk_subclasses(sub)
    return found


def _str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _codes_in_source(path: Path) -> set[str]:
    """String codes written in the source: `code = "x"`, `"code": "x"`, `code="x"`,
    `error("x", …)` (a WebSocket error message), FailedInstance(source, "x", …), what a
    `*_code()` function returns, the status→code table of errors.py, `status, code = 400, "x"`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    codes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "code" and _str(node.value):
                    codes.add(_str(node.value))
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(target.elts, node.value.elts, strict=False):
                        if isinstance(t, ast.Name) and t.id == "code" and _str(v):
                            codes.add(_str(v))
        elif isinstance(node, ast.AnnAssign):  # code: ClassVar[str] = "x"
            if isinstance(node.target, ast.Name) and node.target.id == "code" and _str(node.value):
                codes.add(_str(node.value))
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if _str(k) == "code" and _str(v):
                    codes.add(_str(v))
                int_key = isinstance(k, ast.Constant) and isinstance(k.value, int)
                if int_key and _str(v) and path.name == "errors.py":  # {404: "not_found", …}
                    codes.add(_str(v))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            for kw in node.keywords:
                if kw.arg == "code" and _str(kw.value):
                    codes.add(_str(kw.value))
            if name == "get" and path.name == "errors.py" and len(node.args) == 2 and _str(
                node.args[1]
            ):  # the fallback of the status→code table
                codes.add(_str(node.args[1]))
            if name == "error" and node.args and _str(node.args[0]):
                codes.add(_str(node.args[0]))
            if name == "FailedInstance" and len(node.args) > 1 and _str(node.args[1]):
                codes.add(_str(node.args[1]))
        elif isinstance(node, ast.FunctionDef) and node.name.endswith("_code"):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and _str(ret.value):
                    codes.add(_str(ret.value))
    return codes


def server_error_codes() -> set[str]:
    for mod in pkgutil.walk_packages(server.__path__, "server."):
        if mod.name.endswith("__main__"):
            continue
        importlib.import_module(mod.name)  # so subclasses defined anywhere are found
    codes = {cls.code for cls in _walk_subclasses(errors.HuizhenError) | {errors.HuizhenError}}
    codes |= {code for _status, code in errors._IMAGING.values()}
    for path in (REPO / "server").rglob("*.py"):
        codes |= _codes_in_source(path)
    return codes


def failure_reasons() -> set[int]:
    """PS3.4 Failure Reason values the server puts in a STOW response (server/ingest.py)."""
    from server import ingest

    return {v for k, v in vars(ingest).items() if k.startswith("FAILURE_") and isinstance(v, int)}


def websocket_close_codes() -> set[int]:
    """The page WebSocket's application close codes (4000-4999) the server uses."""
    out = set()
    for path in (REPO / "server" / "realtime").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        out |= {int(n) for n in re.findall(r"(?:CLOSE_\w+\s*=\s*|code=)(4\d{3})\b", text)}
    return out


def _texts(table: dict[str, tuple[str, str]], key: str) -> list[str]:
    problems = []
    if key not in table:
        return [f"{key}: no text"]
    en, zh = table[key]
    if not en.strip() or HAN.search(en):
        problems.append(f"{key}: the English text is missing or not English")
    if not HAN.search(zh):
        problems.append(f"{key}: the Chinese text is missing or has no Chinese")
    return problems


def test_the_collector_sees_the_kinds_of_codes():
    codes = server_error_codes()
    # a class code, an imaging-table code, a middleware literal, a WebSocket literal, an upload one
    assert {"not_found", "invalid_window", "internal_error", "invalid_message",
            "nothing_stored", "wrong_study", "method_not_allowed"} <= codes
    assert 0xC000 in failure_reasons() and 4401 in websocket_close_codes()


def test_every_server_error_code_has_both_texts():
    table = catalogue()
    problems = [p for code in sorted(server_error_codes()) for p in _texts(table, code)]
    assert problems == [], "add them to client_web/js/messages.js:\n" + "\n".join(problems)


def test_every_failure_reason_and_close_code_has_both_texts():
    table = catalogue()
    keys = [f"failure.0x{r:04X}" for r in sorted(failure_reasons())]
    keys += [f"ws.close.{c}" for c in sorted(websocket_close_codes())]
    problems = [p for key in keys for p in _texts(table, key)]
    assert problems == [], "add them to client_web/js/messages.js:\n" + "\n".join(problems)


def test_placeholders_match_between_languages():
    for key, (en, zh) in catalogue().items():
        assert set(re.findall(r"\{(\w+)\}", en)) == set(re.findall(r"\{(\w+)\}", zh)), key

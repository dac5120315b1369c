"""Browser-test fixtures: one live Huizhen server (demo data), a real coturn, and one headless
Debian chromium with fake camera and microphone.

The server runs as a subprocess exactly as an operator starts it (`python -m server demo`, then
`python -m server serve`), on a free port, with its own data dir and Redis database 20. The whole
session runs in a private network namespace holding only `lo` (tests/conftest.py): the server's
ICE host candidates, coturn's listener and relays and chromium's candidates are all on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
REDIS_DB = 20
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
TURNSERVER = "/usr/bin/turnserver"
SCREENSHOT_DIR = REPO / "docs" / "screenshots"


@dataclass(frozen=True)
class TurnServer:
    url: str  # turn:127.0.0.1:<port>?transport=udp
    secret: str
    log_path: Path


@dataclass(frozen=True)
class LiveServer:
    url: str
    password: str
    data_dir: Path
    turn: TurnServer | None = None

    def kiosk_device_token(self) -> str:
        import json

        return json.loads((self.data_dir / "demo_accounts.json").read_text())["kiosk_device_token"]


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


def _wait_healthy(
    url: str, proc: subprocess.Popen, log_path: Path, deadline_s: float = 30.0
) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not healthy within {deadline_s}s:\n{_tail(log_path)}")


def _stun_answers(host: str, port: int) -> bool:
    """True when a STUN Binding request to host:port (UDP) gets a Binding success response."""
    import socket

    txid = secrets.token_bytes(12)
    request = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + txid
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(request, (host, port))
            data, _ = sock.recvfrom(2048)
        except OSError:
            return False
    return data[:2] == b"\x01\x01" and data[8:20] == txid


@pytest.fixture(scope="session")
def turn_server() -> Iterator[TurnServer | None]:
    """A real coturn on loopback with REST (shared-secret) credentials; None when coturn is not
    installed (`make test` installs it), and the TURN test skips with that reason."""
    if not os.path.exists(TURNSERVER):
        yield None
        return
    workdir = Path(tempfile.mkdtemp(prefix="hz-turn-"))
    port = free_port()
    min_port = 40000 + secrets.randbelow(200) * 100
    secret = secrets.token_urlsafe(24)
    log_path = workdir / "turnserver.log"
    (workdir / "turnserver.conf").write_text("")  # not the machine's /etc/turnserver.conf
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [TURNSERVER, "-c", str(workdir / "turnserver.conf"),
             "--use-auth-secret", f"--static-auth-secret={secret}", "--realm=huizhen",
             "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
             f"--min-port={min_port}", f"--max-port={min_port + 99}", "--allow-loopback-peers",
             "--no-cli", "--no-tls", "--no-dtls", "--fingerprint", "--log-file=stdout",
             "--simple-log", f"--pidfile={workdir / 'turnserver.pid'}",
             f"--userdb={workdir / 'turndb'}"],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        end = time.monotonic() + 10
        while not _stun_answers("127.0.0.1", port):
            if proc.poll() is not None:
                raise RuntimeError(f"turnserver exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > end:
                raise RuntimeError(f"turnserver does not answer STUN:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield TurnServer(f"turn:127.0.0.1:{port}?transport=udp", secret, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def start_live_server(
    redis_server, redis_db: int, turn_server: TurnServer | None = None, **extra_env: str
) -> Iterator[LiveServer]:
    """`python -m server demo` then `serve` on a free port with its own data dir and Redis db;
    `extra_env` overrides settings (e.g. `HUIZHEN_ICE_HOST_ADDRESSES` for a server whose media
    the browser cannot reach)."""
    import redis

    redis.Redis.from_url(redis_server.url(redis_db)).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="hz-browser-"))
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "HUIZHEN_DATA_DIR": str(data_dir),
        "HUIZHEN_REDIS_URL": redis_server.url(redis_db),
        "HUIZHEN_SECRET_KEY": secrets.token_urlsafe(32),
        "HUIZHEN_DEMO_PASSWORD": password,
        "HUIZHEN_PORT": str(port),
        "HUIZHEN_HOST": "127.0.0.1",
        "HUIZHEN_LOG_LEVEL": "WARNING",
        # the SFU's ICE candidates: loopback only (the session's namespace has nothing else)
        "HUIZHEN_ICE_HOST_ADDRESSES": "127.0.0.1",
    }
    if turn_server is not None:
        env["HUIZHEN_TURN_URLS"] = turn_server.url
        env["HUIZHEN_TURN_SECRET"] = turn_server.secret
    env.update(extra_env)
    log_path = data_dir / "server.log"
    demo = subprocess.run(
        [sys.executable, "-m", "server", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if demo.returncode != 0:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise RuntimeError(
            f"`server demo` failed ({demo.returncode}):\n{demo.stdout}\n{demo.stderr}"
        )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path)
        yield LiveServer(url, password, data_dir, turn_server)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def live_server(redis_server, turn_server) -> Iterator[LiveServer]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (`make test` installs Debian's chromium)")
    with start_live_server(redis_server, REDIS_DB, turn_server) as server:
        yield server


@pytest.fixture(scope="session")
def browser(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class PageProbe:
    """A page plus everything it said on the console and every uncaught error."""

    page: object
    console: list
    errors: list

    def console_errors(self, allow: tuple[str, ...] = ()) -> list[str]:
        out = [
            f"console.{m.type}: {m.text}"
            for m in self.console
            if m.type == "error" and not any(a in m.text for a in allow)
        ]
        out += [f"pageerror: {e}" for e in self.errors]
        return out


def _new_probe(
    browser, live_server, locale: str = "en-US", *, viewport: tuple[int, int] = (1280, 800),
    base_url: str | None = None,
) -> tuple[object, PageProbe]:
    context = browser.new_context(
        base_url=base_url or live_server.url,
        viewport={"width": viewport[0], "height": viewport[1]},
        locale=locale,
        permissions=["camera", "microphone"],
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    p = PageProbe(page, [], [])
    page.on("console", lambda msg: p.console.append(msg))
    page.on("pageerror", lambda err: p.errors.append(err))
    return context, p


# What a failed browser test's report carries besides the assertion: for every page it opened,
# the URL, the call's participant and tile states (signaling and media), the connection pill and
# the last console lines; and the tail of the server's log. A call that did not connect on a
# loaded machine is then told apart from one that failed (media "failed", a relay retry, an
# error in the page) without rerunning it.
_PAGE_STATE_JS = """() => {
  const pick = (sel, f) => [...document.querySelectorAll(sel)].map(f);
  const d = (e) => e.dataset;
  return {
    participants: pick('[data-testid=participant]', (e) => d(e).participant + '=' + d(e).state),
    tiles: pick('[data-testid=remote-tile]',
      (e) => d(e).participant + ' state=' + d(e).state + ' media=' + d(e).media),
    reconnecting: pick('[data-testid=banner-reconnecting]', (e) => !e.hidden),
    quality: pick('[data-testid=net-quality]', (e) => d(e).level),
    notices: pick('[data-testid=notice]', (e) => e.textContent.trim()).slice(-5),
  };
}"""


def _describe_pages(probes: list[PageProbe], log_path: Path | None) -> str:
    out = []
    for i, p in enumerate(probes):
        try:
            url = p.page.url
            state = p.page.evaluate(_PAGE_STATE_JS)
            state["call"] = p.page.evaluate(
                "() => window.huizhenCall ? window.huizhenCall.diagnostics() : null")
        except Exception as exc:  # a closed or crashed page is itself the finding
            url, state = "?", f"(page not readable: {exc})"
        out.append(f"page {i}: {url}\n  {state}")
        out += [f"  console.{m.type}: {m.text}"[:400] for m in p.console[-25:]]
        out += [f"  pageerror: {e}"[:400] for e in p.errors[-5:]]
    if log_path is not None and log_path.exists():
        out.append("server log (tail):\n" + _tail(log_path))
    return "\n".join(out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    rep = outcome.get_result()
    probes = getattr(item, "_hz_probes", None)
    if rep.when == "call" and rep.failed and probes:
        server = item.funcargs.get("live_server")
        log_path = server.data_dir / "server.log" if isinstance(server, LiveServer) else None
        rep.sections.append(("browser pages at failure", _describe_pages(probes, log_path)))


@pytest.fixture
def probe(browser, live_server, request) -> Iterator[PageProbe]:
    context, p = _new_probe(browser, live_server)
    request.node._hz_probes = [p]
    try:
        yield p
    finally:
        context.close()


@pytest.fixture
def new_probe(browser, live_server, request) -> Iterator[object]:
    """A factory of pages, each in its own browser context (own storage, own fake camera and
    microphone, camera/microphone permission granted): `new_probe(locale="zh-CN")`,
    `new_probe(viewport=(1024, 768))`, `new_probe(base_url=other_server.url)`."""
    contexts = []
    probes: list[PageProbe] = []
    request.node._hz_probes = probes

    def make(locale: str = "en-US", **kw) -> PageProbe:
        context, p = _new_probe(browser, live_server, locale, **kw)
        contexts.append(context)
        probes.append(p)
        return p

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


TOPBAR_READY_JS = """
(id) => {
  const el = document.querySelector(`[data-testid="${id}"]`);
  return Boolean(el) && !el.hidden
    && (Boolean(el.closest('.tools-menu')) || el.getBoundingClientRect().width > 0);
}
"""


def topbar_click(page, testid: str) -> None:
    """Clicks a top-bar link of the page shell, from its "More" menu (`topbar-more`) when the
    bar has no room for it (js/components/shell.js)."""
    page.wait_for_function(TOPBAR_READY_JS, arg=testid)
    target = page.locator(f'[data-testid="{testid}"]')
    if not target.is_visible():
        page.locator('[data-testid="topbar-more"]').click()
    target.click()


def screenshot(page, name: str) -> None:
    """Saved into docs/screenshots/ only when HUIZHEN_SCREENSHOTS=1."""
    if os.environ.get("HUIZHEN_SCREENSHOTS") != "1":
        return
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"))


@pytest.fixture(scope="session")
def odd_server(redis_server, turn_server, live_server) -> Iterator[LiveServer]:
    """A second server for the failures: its SFU's only ICE host address (TEST-NET-1,
    192.0.2.1) does not exist in the test's network namespace, so it offers no candidate the
    browser can reach (media cannot connect; with TURN configured the page also tries
    relay-only), and a request rings for 5 s only (HUIZHEN_RING_TIMEOUT_S)."""
    with start_live_server(
        redis_server, REDIS_DB + 1, turn_server,
        HUIZHEN_ICE_HOST_ADDRESSES="192.0.2.1", HUIZHEN_RING_TIMEOUT_S="5",
    ) as server:
        yield server

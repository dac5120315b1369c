"""Settings from `HUIZHEN_*` environment variables (the only configuration source)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

from server.errors import ConfigurationError


def _int(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var")
    # None: `huizhen serve` starts a private redis-server child with AOF under data_dir.
    redis_url: str | None = None
    secret_key: str = field(default="", repr=False)
    max_upload_mb: int = 512
    # rows x columns x frames above this is refused at ingest (a 2048x2048x240 volume is ~1e9).
    max_image_pixels: int = 1_000_000_000
    # rows x columns of one frame (mammography is ~21 million); bounds what one decode holds.
    max_frame_pixels: int = 40_000_000
    # Decoded pixels in one WADO-RS response (frames, or instances transcoded on the way out).
    max_response_mb: int = 2048
    token_ttl_s: int = 12 * 3600
    render_threads: int = 2
    frame_cache_mb: int = 512
    image_cache_mb: int = 128
    log_level: str = "INFO"
    redis_server_binary: str = "redis-server"
    # AOF fsync policy of the embedded redis-server. "always" costs ~5 ms per write on a VM disk,
    # which every audited frame would pay; "everysec" loses at most ~1 s on power loss (never on
    # a crash of Redis or Huizhen alone).
    redis_appendfsync: str = "everysec"
    # Real-time: STUN/TURN for browsers; TURN credentials are coturn REST ones from turn_secret.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_s: int = 600
    # Addresses the SFU gathers ICE host candidates on (None: every interface). Tests: 127.0.0.1.
    ice_host_addresses: tuple[str, ...] | None = None
    reconnect_grace_s: float = 30.0
    # Study grants: a consult's lasts its room's life plus grant_ttl_s; break-glass ones are short.
    grant_ttl_s: int = 7 * 24 * 3600
    break_glass_ttl_s: int = 3600
    # The origin users reach the server at (https://pacs.example.org); every absolute URL the
    # server writes starts with it. None: URLs are written relative to the request's own origin.
    public_url: str | None = None
    # Page WebSockets: per user (in this process), and still unauthenticated ones in total.
    ws_max_per_user: int = 10
    ws_max_unauthenticated: int = 100
    # Consult requests: how long one rings, and how many one doctor may have ringing / start.
    ring_timeout_s: float = 120.0
    consult_max_ringing: int = 3
    consult_starts_per_hour: int = 30
    # Unanswered consults escalate while they ring: seconds after the start to re-ring the
    # department, then to tell the whole department and its head (each once).
    consult_escalation_s: tuple[int, ...] = (30, 60)
    # Reading requests: a claim not renewed (reading page open, draft saved) for this long
    # returns the item to the department's list.
    worklist_lease_s: int = 1800
    # Critical-value alerts not acknowledged: seconds after raising to re-notify the clinic,
    # then its escalation contacts and the raising department's head, then the on-duty
    # coordinator (docs/clinical.md says why these defaults); significant positive findings
    # (the lesser tier) on a slower schedule.
    alert_escalation_s: tuple[int, ...] = (300, 600, 900)
    alert_significant_escalation_s: tuple[int, ...] = (1800, 3600, 7200)
    # A participant whose server-side peer connection is not connected after this is told so.
    media_timeout_s: float = 15.0
    # Remote ICE candidates the SFU will use (CIDRs); None: the default policy of media.rtc.ice.
    ice_allowed_networks: tuple[str, ...] | None = None
    # Origins (scheme://host[:port]) whose pages may call DICOMweb with a bearer token (CORS).
    cors_origins: tuple[str, ...] = ()
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (a reverse proxy in front).
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # Both set: serve HTTPS and WSS directly (PEM files).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # The reading institution named on printed reports and /verify pages.
    institution: str = "Huizhen"
    # GET /verify/{code}: lookups per client address per window (public, so rate-limited).
    verify_per_window: int = 30
    verify_window_s: int = 600
    # `huizhen audit prune` never removes audit entries younger than this. China's Cybersecurity
    # Law (网络安全法, art. 21) asks network logs be kept at least six months: it can be raised,
    # not lowered below 180.
    audit_retention_days: int = 180

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigurationError(
                "set both HUIZHEN_TLS_CERT_FILE and HUIZHEN_TLS_KEY_FILE (or neither)"
            )

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def dicom_dir(self) -> Path:
        return self.data_dir / "dicom"

    @property
    def redis_dir(self) -> Path:
        return self.data_dir / "redis"

    @property
    def referrals_dir(self) -> Path:
        """Referral versions, one fsync'd JSON-lines file per referral (the clinical record)."""
        return self.data_dir / "referrals"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 2**20

    @property
    def max_response_bytes(self) -> int:
        return self.max_response_mb * 2**20

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("HUIZHEN_DATA_DIR") or "var").resolve()
        return cls(
            host=env.get("HUIZHEN_HOST") or "127.0.0.1",
            port=_int(env, "HUIZHEN_PORT", 8080, 0),
            data_dir=data_dir,
            redis_url=env.get("HUIZHEN_REDIS_URL") or None,
            secret_key=env.get("HUIZHEN_SECRET_KEY") or _local_secret(data_dir),
            max_upload_mb=_int(env, "HUIZHEN_MAX_UPLOAD_MB", 512, 1),
            max_image_pixels=_int(env, "HUIZHEN_MAX_IMAGE_PIXELS", 1_000_000_000, 1),
            max_frame_pixels=_int(env, "HUIZHEN_MAX_FRAME_PIXELS", 40_000_000, 1),
            max_response_mb=_int(env, "HUIZHEN_MAX_RESPONSE_MB", 2048, 1),
            token_ttl_s=_int(env, "HUIZHEN_TOKEN_TTL_S", 12 * 3600, 1),
            render_threads=_int(
                # One per core: the work releases the GIL, so more threads only queue and
                # evict each other's caches (measured: 4 threads on 2 cores was slower).
                env, "HUIZHEN_RENDER_THREADS", os.cpu_count() or 2, 1
            ),
            frame_cache_mb=_int(env, "HUIZHEN_FRAME_CACHE_MB", 512, 0),
            image_cache_mb=_int(env, "HUIZHEN_IMAGE_CACHE_MB", 128, 0),
            log_level=(env.get("HUIZHEN_LOG_LEVEL") or "INFO").upper(),
            redis_server_binary=env.get("HUIZHEN_REDIS_SERVER") or "redis-server",
            redis_appendfsync=_choice(env, "HUIZHEN_REDIS_APPENDFSYNC", ("everysec", "always")),
            stun_urls=_list(env, "HUIZHEN_STUN_URLS") or (),
            turn_urls=_list(env, "HUIZHEN_TURN_URLS") or (),
            turn_secret=env.get("HUIZHEN_TURN_SECRET") or "",
            turn_ttl_s=_int(env, "HUIZHEN_TURN_TTL_S", 600, 60),
            ice_host_addresses=_list(env, "HUIZHEN_ICE_HOST_ADDRESSES"),
            reconnect_grace_s=float(_int(env, "HUIZHEN_RECONNECT_GRACE_S", 30, 1)),
            grant_ttl_s=_int(env, "HUIZHEN_GRANT_TTL_S", 7 * 24 * 3600, 1),
            break_glass_ttl_s=_int(env, "HUIZHEN_BREAK_GLASS_TTL_S", 3600, 1),
            public_url=_public_url(env),
            ws_max_per_user=_int(env, "HUIZHEN_WS_MAX_PER_USER", 10, 1),
            ws_max_unauthenticated=_int(env, "HUIZHEN_WS_MAX_UNAUTHENTICATED", 100, 1),
            ring_timeout_s=float(_int(env, "HUIZHEN_RING_TIMEOUT_S", 120, 5)),
            consult_max_ringing=_int(env, "HUIZHEN_CONSULT_MAX_RINGING", 3, 1),
            consult_starts_per_hour=_int(env, "HUIZHEN_CONSULT_STARTS_PER_HOUR", 30, 1),
            consult_escalation_s=_schedule(env, "HUIZHEN_CONSULT_ESCALATION_S", (30, 60), 2),
            worklist_lease_s=_int(env, "HUIZHEN_WORKLIST_LEASE_S", 1800, 5),
            alert_escalation_s=_schedule(env, "HUIZHEN_ALERT_ESCALATION_S", (300, 600, 900), 3),
            alert_significant_escalation_s=_schedule(
                env, "HUIZHEN_ALERT_SIGNIFICANT_ESCALATION_S", (1800, 3600, 7200), 3),
            media_timeout_s=float(_int(env, "HUIZHEN_MEDIA_TIMEOUT_S", 15, 2)),
            ice_allowed_networks=_networks(env, "HUIZHEN_ICE_ALLOWED_NETWORKS"),
            cors_origins=_origins(env, "HUIZHEN_CORS_ORIGINS"),
            trusted_proxies=_proxy_networks(env, "HUIZHEN_TRUSTED_PROXIES"),
            tls_cert_file=_file(env, "HUIZHEN_TLS_CERT_FILE"),
            tls_key_file=_file(env, "HUIZHEN_TLS_KEY_FILE"),
            institution=(env.get("HUIZHEN_INSTITUTION") or "Huizhen").strip()[:200] or "Huizhen",
            verify_per_window=_int(env, "HUIZHEN_VERIFY_PER_WINDOW", 30, 1),
            audit_retention_days=_int(env, "HUIZHEN_AUDIT_RETENTION_DAYS", 180, 180),
        )


def _schedule(
    env: dict[str, str], name: str, default: tuple[int, ...], steps: int
) -> tuple[int, ...]:
    """`steps` increasing whole seconds (≥ 1), comma-separated: when each escalation step is due."""
    items = _list(env, name)
    if not items:
        return default
    try:
        values = tuple(int(i) for i in items)
    except ValueError as exc:
        raise ConfigurationError(
            f"{name} must be {steps} whole seconds, got {env[name]!r}") from exc
    if len(values) != steps or values[0] < 1 or any(b <= a for a, b in pairwise(values)):
        raise ConfigurationError(
            f"{name} must be {steps} increasing whole seconds (at least 1), got {env[name]!r}")
    return values


def _public_url(env: dict[str, str]) -> str | None:
    raw = (env.get("HUIZHEN_PUBLIC_URL") or "").strip().rstrip("/")
    if not raw:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
        raise ConfigurationError(
            f"HUIZHEN_PUBLIC_URL must be an origin like https://pacs.example.org, got {raw!r}"
        )
    return raw


def _origins(env: dict[str, str], name: str) -> tuple[str, ...]:
    origins = []
    for item in _list(env, name) or ():
        parsed = urlsplit(item)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in "/":
            raise ConfigurationError(f"{name}: {item!r} is not an origin like https://host:port")
        origins.append(f"{parsed.scheme}://{parsed.netloc}")
    return tuple(origins)


def _proxy_networks(env: dict[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ip_network(item, strict=False) for item in _list(env, name) or ())
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a comma-separated list of CIDRs: {exc}") from exc


def _file(env: dict[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigurationError(f"{name}: {raw} is not a readable file")
    return path


def _list(env: dict[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if not raw:
        return None
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _networks(env: dict[str, str], name: str) -> tuple[str, ...] | None:
    import ipaddress

    networks = _list(env, name)
    for n in networks or ():
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {n!r} is not a CIDR network ({exc})") from exc
    return networks


def _default_threads() -> int:
    # numpy, libjpeg-turbo and Pillow release the GIL and reads come from the page cache: one
    # worker per core. More threads measured slower here (jobs land on threads whose caches
    # are cold; docs/benchmarks.md).
    return os.cpu_count() or 2


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = (env.get(name) or choices[0]).lower()
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _local_secret(data_dir: Path) -> str:
    """Without HUIZHEN_SECRET_KEY a single-machine install keeps a random key in the data dir.

    The key never lives in the repository; tokens survive restarts because it is reused.
    """
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key

"""The `huizhen` command: serve, demo data, reindex, and operator commands for people and kiosks.

Every command works against the same Redis and data dir the server uses, before or while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from server import log as hzlog
from server.auth.passwords import hash_password
from server.config import Settings
from server.errors import HuizhenError
from server.log import event
from server.redis_server import FILE_UMASK
from server.runtime import open_store, prepare_data_dir, redis_url, serve_lock
from server.store import Store
from server.store.directory import Role
from server.transport import tls

log = logging.getLogger("server.cli")


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


# -- serve ---------------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the operator commands need none of the app (media, WebRTC), and start
    # about twice as fast without it.
    from server.app import create_app

    ssl_context = tls.server_context(settings)
    url = tls.open_url(settings)

    def listening(_: str) -> None:
        # run_app calls this once every site listens: only then is the address worth opening.
        event(log, "serving", url=url, tls=settings.tls)
        _out(f"Open {url}")
        sys.stdout.flush()

    with serve_lock(settings), redis_url(settings, own=True) as redis:

        async def app_factory() -> web.Application:
            store = Store.from_url(redis)
            await store.ping()
            return create_app(settings, store)

        web.run_app(
            app_factory(),
            host=settings.host,
            port=settings.port,
            ssl_context=ssl_context,
            print=listening,
            access_log=None,
            shutdown_timeout=5,
        )
    return 0


# -- commands that only need the store ------------------------------------------------------------


async def cmd_demo(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    from server.demo.seed import USERS, demo_password, seed

    password = demo_password(settings, args.password or os.environ.get("HUIZHEN_DEMO_PASSWORD"))
    result = await seed(settings, store, password, ct_slices=args.ct_slices)
    accounts = json.loads((settings.data_dir / "demo_accounts.json").read_text())
    # what this run really added: a second run adds nothing and says so
    _out(f"Demo data ready: {result['stored']} new instances, "
         f"{result['accounts_added']} new accounts.")
    _out("Sign in with one of these (`huizhen serve` prints the address once it listens):")
    for u in USERS:
        where = u.clinic or u.department or ""
        _out(f"  {u.username:<10} {u.role.value:<12} {where:<12} password: {password}")
    _out(f"Kiosk device token (clinic qingshui): {accounts.get('kiosk_device_token')}")
    _out(f"(saved in {settings.data_dir / 'demo_accounts.json'}, readable only by you)")
    return 0


async def cmd_reindex(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from server.clinical.alerts import AlertService
    from server.clinical.referrals import ReferralService
    from server.clinical.reports import ReportService
    from server.ingest import Ingestor

    # Referral grants come back with the server's TTL (ReferralService.reindex).
    store.grants.configure(ttl_s=settings.grant_ttl_s,
                           break_glass_ttl_s=settings.break_glass_ttl_s)
    with ThreadPoolExecutor(settings.render_threads) as pool:
        indexed, bad = await Ingestor(settings, store, pool).reindex()
        reports, bad_reports = await ReportService(settings, store, pool).reindex()
        referrals = await ReferralService(store, journal_dir=settings.referrals_dir,
                                          executor=pool).reindex()
        alerts = AlertService(settings, store, pool)
        restored, journalled = await alerts.reindex()
    _out(f"Reindexed {indexed} instances from {settings.dicom_dir}; {bad} unreadable or misplaced.")
    _out(f"Reindexed {reports} reports and opinions; {bad_reports} unreadable.")
    _out(f"Restored {referrals} referrals from {settings.referrals_dir}.")
    _out(f"Restored {restored} of {journalled} critical-value alerts from {alerts.journal_path}"
         " (the others Redis held already).")
    return 0 if bad == 0 and bad_reports == 0 else 1


async def cmd_clinic_add(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    clinic = await store.directory.add_clinic(args.name, args.id)
    await _audit_operator(store, "admin.clinic.add", target=clinic.id)
    _out(f"clinic {clinic.id} added: {clinic.name}")
    return 0


async def cmd_clinic_list(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    for c in await store.directory.clinics():
        _out(f"{c.id}\t{c.name}")
    return 0


async def cmd_department_add(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    dept = await store.directory.add_department(args.name, args.id)
    await _audit_operator(store, "admin.department.add", target=dept.id)
    _out(f"department {dept.id} added: {dept.name}")
    return 0


async def cmd_department_head(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    dept = await store.directory.set_department_head(args.department, args.username or "")
    await _audit_operator(store, "admin.department.head", target=dept.id, head=dept.head)
    _out(f"head of {dept.id}: {dept.head or '(none)'}")
    return 0


async def cmd_department_list(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    for d in await store.directory.departments():
        _out(f"{d.id}\t{d.name}\thead={d.head or '-'}")
    return 0


async def cmd_clinic_contacts(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    names = [n for n in (args.usernames or "").split(",") if n]
    await store.directory.set_clinic_contacts(args.clinic, names)
    await _audit_operator(store, "admin.clinic.contacts", target=args.clinic,
                          contacts=",".join(names))
    _out(f"escalation contacts of {args.clinic}: {', '.join(names) or '(none)'}")
    return 0


async def cmd_on_duty(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    names = [n for n in (args.usernames or "").split(",") if n]
    await store.directory.set_on_duty(names)
    await _audit_operator(store, "admin.coordinators.on_duty", on_duty=",".join(names))
    _out(f"coordinators on duty: {', '.join(names) or '(every coordinator)'}")
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password == "-":
        return sys.stdin.readline().rstrip("\n")
    if args.password:
        return args.password
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Repeat: "):
            raise HuizhenError("the passwords differ")
        return first
    raise HuizhenError("give --password P (or --password - to read it from standard input)")


async def cmd_user_add(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    password = _password(args)
    try:
        pw_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
    except ValueError as exc:
        raise HuizhenError(str(exc)) from exc
    user = await store.directory.add_user(
        args.username,
        role=Role(args.role),
        password_hash=pw_hash,
        display_name=args.display_name,
        clinic=args.clinic,
        department=args.department,
    )
    await _audit_operator(store, "admin.user.add", target=user.username,
                          target_role=user.role.value)
    _out(
        f"user {user.username} added as {user.role.value}"
        + (f" of clinic {user.clinic}" if user.clinic else "")
        + (f" of department {user.department}" if user.department else "")
    )
    return 0


async def cmd_user_list(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    _out("username\trole\tclinic/department\tstate\tdisplay name")
    for u in await store.directory.users():
        state = "disabled" if u.disabled else "enabled"
        _out(f"{u.username}\t{u.role.value}\t{u.clinic or u.department or '-'}\t{state}"
             f"\t{u.display_name}")
    return 0


async def _audit_operator(store: Store, action: str, **resource: object) -> None:
    """Operator commands are audited like the admin page: the OS account, from this machine."""
    try:
        who = getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment (a container)
        who = "unknown"
    await store.audit.record(action=action, user=f"cli:{who}", role="operator",
                             clinic=None, remote="local", **resource)


async def cmd_user_disable(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    await store.directory.set_disabled(args.username, True)
    await _audit_operator(store, "admin.user.disable", target=args.username)
    _out(f"user {args.username} disabled; their sessions end within seconds")
    return 0


async def cmd_user_enable(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    await store.directory.set_disabled(args.username, False)
    await _audit_operator(store, "admin.user.enable", target=args.username)
    _out(f"user {args.username} enabled (they sign in again; old sessions stay ended)")
    return 0


async def cmd_user_password(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    if await store.directory.get_user(args.username) is None:
        raise HuizhenError(f"user {args.username!r} does not exist")
    password = _password(args)
    try:
        pw_hash = await asyncio.get_running_loop().run_in_executor(None, hash_password, password)
    except ValueError as exc:
        raise HuizhenError(str(exc)) from exc
    await store.directory.change_password(args.username, pw_hash)
    await _audit_operator(store, "admin.user.password", target=args.username)
    _out(f"password of {args.username} set; their older sessions end within seconds")
    return 0


async def cmd_device_add(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    device, token = await store.directory.add_device(args.name, args.clinic)
    _out(f"kiosk {device.id} ({device.name}) bound to clinic {device.clinic}")
    _out(f"device token (shown once, configure it on the kiosk): {token}")
    await _audit_operator(store, "admin.device.add", target=device.id, device_clinic=device.clinic)
    return 0


async def cmd_device_list(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    _out("id\tclinic\tstate\tcreated\tname")
    for d in await store.directory.devices():
        created = (time.strftime("%Y-%m-%d %H:%M", time.gmtime(d.created_at))
                   if d.created_at else "-")
        state = "revoked" if d.revoked_at else "active"
        _out(f"{d.id}\t{d.clinic}\t{state}\t{created}\t{d.name}")
    return 0


async def cmd_device_revoke(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    device = await store.directory.revoke_device(args.name)
    await _audit_operator(store, "admin.device.revoke", target=device.id,
                          device_clinic=device.clinic)
    _out(f"kiosk {device.id} ({device.name}) of clinic {device.clinic} revoked; its sessions "
         "end within seconds")
    return 0


async def cmd_audit_tail(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    for ev in reversed(await store.audit.recent(args.count)):
        _out(ev.id + " " + " ".join(f"{k}={v}" for k, v in ev.fields.items()))
    return 0


async def cmd_audit_search(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    """The audit page's search from the command line; --csv writes every match (paged)."""
    from server import audit_search as search

    query = search.parse_query({
        "user": args.user or "", "patient": args.patient or "", "clinic": args.clinic or "",
        "action": args.action or "", "since": args.since or "", "until": args.until or "",
        "break_glass": "1" if args.break_glass else "",
    })
    query = await search.resolve(store, query)
    out = None
    if args.csv:
        out = sys.stdout if args.csv == "-" else open(  # noqa: ASYNC230, SIM115
            args.csv, "w", encoding="utf-8", newline="")
        out.write(search.csv_header())
    written, before = 0, None
    try:
        while written < args.limit:
            page = await search.search(store, query, before=before,
                                       limit=min(1000, args.limit - written))
            for ev in page.events:
                if out is None:
                    view = search.event_view(ev)
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(view["ts"])))
                    glass = " BREAK-GLASS" if view["break_glass"] else ""
                    details = " ".join(f"{k}={v}" for k, v in view["details"].items())
                    _out(f"{ev.id} {when}Z {view['action']} {view['user']}{glass} {details}")
            if out is not None and page.events:
                out.write(search.csv_rows(page.events))
            written += len(page.events)
            if page.next is None:
                break
            before = page.next
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    await _audit_operator(store, "audit.export" if args.csv else "audit.search",
                          query=" ".join(f"{k}={v}" for k, v in query.public().items() if v),
                          returned=written)
    if args.csv and args.csv != "-":
        _out(f"{written} events written to {args.csv}")
    return 0


def _before_ms(text: str) -> int:
    """--before: a date, a date-time (UTC), unix seconds or a duration ago (`180d`, `-12h`)."""
    from server.audit_search import parse_time

    return int(parse_time(text, "--before") * 1000)


def _abs_path(text: str) -> Path:
    """A file argument made absolute at parse time (the audit records where it went)."""
    return Path(text).absolute()


def _iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


async def cmd_audit_export(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    """Entries older than --before into a gzip JSON-lines archive with a manifest."""
    from server import audit_archive

    before_ms = _before_ms(args.before)
    if before_ms > time.time() * 1000:
        raise HuizhenError("--before is in the future: an archive covers a closed range")
    out: Path = args.out
    await store.audit.flush()
    manifest = await audit_archive.export(store.redis, out, before_ms=before_ms,
                                          chunk=audit_archive.check_chunk(args.chunk))
    if manifest is None:
        _out(f"no audit entries before {_iso_ms(before_ms)}; nothing written")
        return 0
    # audited once the archive is durable (its id is after the bound: never in the archive)
    await _audit_operator(store, "audit.archive", before=_iso_ms(before_ms), file=str(out),
                          first_id=manifest.first_id, last_id=manifest.last_id,
                          count=manifest.count, sha256=manifest.sha256)
    _out(f"{manifest.count} entries {manifest.first_id}..{manifest.last_id} written to {out}")
    _out(f"manifest: {audit_archive.manifest_path(out)} (sha256 {manifest.sha256})")
    return 0


async def cmd_audit_prune(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    """Remove from the stream the old entries a verified archive holds (exit 2: refused)."""
    from server import audit_archive

    archive: Path = args.archive
    before_ms = _before_ms(args.before)
    result = await audit_archive.prune(
        store.redis, archive, before_ms=before_ms,
        retention_days=settings.audit_retention_days,
        chunk=audit_archive.check_chunk(args.chunk))
    await _audit_operator(store, "audit.prune", before=_iso_ms(before_ms), archive=str(archive),
                          sha256=result.sha256,
                          first_id=result.first_id or "", last_id=result.last_id or "",
                          count=result.count)
    if result.count:
        _out(f"{result.count} archived entries {result.first_id}..{result.last_id} removed "
             "from the audit stream")
    else:
        _out("nothing to remove: no archived entry before the bound is in the stream (any more)")
    return 0


async def cmd_referral_routes(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    _out("direction\tfrom\tto")
    for r in await store.referrals.routes():
        src, dst = (r.clinic, r.department) if r.direction.value == "up" else \
            (r.department, r.clinic)
        _out(f"{r.direction.value}\t{src}\t{dst}")
    return 0


async def cmd_referral_route(settings: Settings, store: Store, args: argparse.Namespace) -> int:
    from server.store.referrals import Direction

    if await store.directory.get_clinic(args.clinic) is None:
        raise HuizhenError(f"clinic {args.clinic!r} does not exist")
    if await store.directory.get_department(args.department) is None:
        raise HuizhenError(f"department {args.department!r} does not exist")
    allow = args.action == "allow"
    directions = [Direction.UP, Direction.DOWN] if args.direction == "both" else \
        [Direction(args.direction)]
    for d in directions:
        if allow:
            await store.referrals.allow(d, args.clinic, args.department)
        else:
            await store.referrals.deny(d, args.clinic, args.department)
        await _audit_operator(store, f"admin.referral_route.{'allow' if allow else 'deny'}",
                              direction=d.value, target_clinic=args.clinic,
                              department=args.department)
    what = "may now refer" if allow else "may no longer refer"
    _out(f"{args.clinic} and {args.department} {what} ({args.direction})")
    return 0


StoreCommand = Callable[[Settings, Store, argparse.Namespace], Awaitable[int]]


def _with_store(fn: StoreCommand) -> Callable[[Settings, argparse.Namespace], int]:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        async def go() -> int:
            async with open_store(settings) as store:
                return await fn(settings, store, args)

        return asyncio.run(go())

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huizhen", description="Huizhen remote consultation and tele-imaging server"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="run the server").set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="load demo clinics, accounts and studies")
    demo.add_argument(
        "--password", help="demo password (default: $HUIZHEN_DEMO_PASSWORD or random)"
    )
    demo.add_argument("--ct-slices", type=int, default=120, help="slices of the demo CT")
    demo.set_defaults(func=_with_store(cmd_demo))

    sub.add_parser(
        "reindex", help="rebuild Redis from the files: studies, reports, referrals, alerts"
    ).set_defaults(func=_with_store(cmd_reindex))

    clinic = sub.add_parser("clinic", help="manage clinics").add_subparsers(
        dest="action", required=True
    )
    c_add = clinic.add_parser("add", help="add a clinic")
    c_add.add_argument("name")
    c_add.add_argument("--id", help="short id (default: derived from the name)")
    c_add.set_defaults(func=_with_store(cmd_clinic_add))
    clinic.add_parser("list").set_defaults(func=_with_store(cmd_clinic_list))
    c_contacts = clinic.add_parser(
        "contacts", help="who is told when a critical alert goes unacknowledged")
    c_contacts.add_argument("clinic")
    c_contacts.add_argument("usernames", nargs="?", default="",
                            help="the clinic's doctors, comma-separated (none: clear)")
    c_contacts.set_defaults(func=_with_store(cmd_clinic_contacts))

    dept = sub.add_parser("department", help="manage departments").add_subparsers(
        dest="action", required=True
    )
    d_add = dept.add_parser("add", help="add a department")
    d_add.add_argument("name")
    d_add.add_argument("--id")
    d_add.set_defaults(func=_with_store(cmd_department_add))
    d_head = dept.add_parser("head", help="set the head of a department (one of its experts)")
    d_head.add_argument("department")
    d_head.add_argument("username", nargs="?", default="", help="none: clear")
    d_head.set_defaults(func=_with_store(cmd_department_head))
    dept.add_parser("list", help="departments with their heads").set_defaults(
        func=_with_store(cmd_department_list))

    coord = sub.add_parser("coordinator", help="coordinators").add_subparsers(
        dest="action", required=True)
    on_duty = coord.add_parser(
        "on-duty", help="who is on duty (the last step of a critical alert's escalation)")
    on_duty.add_argument("usernames", nargs="?", default="",
                         help="comma-separated (none: every coordinator)")
    on_duty.set_defaults(func=_with_store(cmd_on_duty))

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    u_add = user.add_parser("add", help="add a user")
    u_add.add_argument("username")
    u_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    u_add.add_argument("--clinic", help="the clinic of a doctor")
    u_add.add_argument("--department", help="the department of an expert")
    u_add.add_argument("--password", help="the password; '-' reads it from standard input")
    u_add.add_argument("--display-name")
    u_add.set_defaults(func=_with_store(cmd_user_add))
    user.add_parser("list", help="users with role, clinic/department and state").set_defaults(
        func=_with_store(cmd_user_list))
    for action, fn, text in (("disable", cmd_user_disable, "disable a user (ends their sessions)"),
                             ("enable", cmd_user_enable, "enable a disabled user")):
        u_state = user.add_parser(action, help=text)
        u_state.add_argument("username")
        u_state.set_defaults(func=_with_store(fn))
    u_pw = user.add_parser("password", help="set a user's password (ends their older sessions)")
    u_pw.add_argument("username")
    u_pw.add_argument("--password", help="the password; '-' reads it from standard input")
    u_pw.set_defaults(func=_with_store(cmd_user_password))

    device = sub.add_parser("device", help="manage clinic kiosks").add_subparsers(
        dest="action", required=True
    )
    dv_add = device.add_parser("add", help="register a kiosk bound to a clinic")
    dv_add.add_argument("name")
    dv_add.add_argument("--clinic", required=True)
    dv_add.set_defaults(func=_with_store(cmd_device_add))
    device.add_parser("list", help="kiosks with clinic and state").set_defaults(
        func=_with_store(cmd_device_list))
    dv_revoke = device.add_parser("revoke", help="revoke a kiosk's device token")
    dv_revoke.add_argument("name", help="the kiosk's id, or its name when only one has it")
    dv_revoke.set_defaults(func=_with_store(cmd_device_revoke))

    audit = sub.add_parser("audit", help="read, export and prune the audit stream").add_subparsers(
        dest="action", required=True
    )
    tail = audit.add_parser("tail", help="the latest audit events")
    tail.add_argument("-n", "--count", type=int, default=50)
    tail.set_defaults(func=_with_store(cmd_audit_tail))
    a_search = audit.add_parser(
        "search", help="search the audit stream (newest first); --csv exports the matches")
    a_search.add_argument("--user", help="the acting account")
    a_search.add_argument("--patient", help="a PatientID (events naming it or its studies)")
    a_search.add_argument("--clinic", help="actor's, study's, kiosk's or referral's clinic")
    a_search.add_argument("--action", help="exact or prefix* (comma-separated)")
    a_search.add_argument("--since", help="unix seconds, ISO 8601 (UTC) or -15m/-2h/-7d")
    a_search.add_argument("--until", help="unix seconds, ISO 8601 (UTC) or -15m/-2h/-7d")
    a_search.add_argument("--break-glass", action="store_true",
                          help="only views under emergency access")
    a_search.add_argument("-n", "--limit", type=int, default=1000,
                          help="at most this many events (default 1000)")
    a_search.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-': stdout)")
    a_search.set_defaults(func=_with_store(cmd_audit_search))
    for action, fn, file_opt, text, file_help in (
            ("export", cmd_audit_export, "--out",
             "archive the entries older than --before (gzip JSON lines + manifest)",
             "the archive (FILE.manifest.json is written beside it)"),
            ("prune", cmd_audit_prune, "--archive",
             "remove from the stream the old entries a verified archive holds "
             "(--before at least HUIZHEN_AUDIT_RETENTION_DAYS ago)",
             "an archive written by `huizhen audit export`")):
        a_retain = audit.add_parser(action, help=text)
        a_retain.add_argument("--before", required=True,
                              help="ISO 8601 date/date-time (UTC), unix seconds, or 180d ago")
        a_retain.add_argument(file_opt, required=True, metavar="FILE", type=_abs_path,
                              help=file_help)
        a_retain.add_argument("--chunk", type=int, default=1000,
                              help="entries read, written or removed per step (memory bound)")
        a_retain.set_defaults(func=_with_store(fn))

    referral = sub.add_parser(
        "referral", help="which clinics and departments may refer to each other"
    ).add_subparsers(dest="action", required=True)
    referral.add_parser("routes", help="the configured referral routes").set_defaults(
        func=_with_store(cmd_referral_routes))
    for action, text in (("allow", "let a clinic and a department refer (up, down or both)"),
                         ("deny", "remove a referral route (existing referrals go on)")):
        r_route = referral.add_parser(action, help=text)
        r_route.add_argument("--clinic", required=True)
        r_route.add_argument("--department", required=True)
        r_route.add_argument("--direction", choices=["up", "down", "both"], default="both")
        r_route.set_defaults(func=_with_store(cmd_referral_route))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Before anything is written (even the generated secret key): owner-only files.
    os.umask(FILE_UMASK)
    try:
        settings = Settings.from_env()
        hzlog.configure(settings.log_level)
        prepare_data_dir(settings)
        return int(args.func(settings, args))
    except HuizhenError as err:
        sys.stderr.write(f"huizhen: {err.message}\n")
        return 2

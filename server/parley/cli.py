"""The ``parley`` command: serve, migrate, token, check."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from parley import __version__
from parley.config import ConfigurationError, Settings, load_settings
from parley.observability.logs import configure_logging, logging_config

if TYPE_CHECKING:
    from parley.storage.embedded import EmbeddedStorage

log = logging.getLogger("parley")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print("parley: invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    result: int = args.command(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="A conversational agent server.")
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run migrations, load the catalog and serve",
        description="Run migrations, load the catalog and serve HTTP and WebSockets. "
        "Without DATABASE_URL or REDIS_URL, starts embedded servers in PARLEY_DATA_DIR.",
    )
    serve.add_argument("--host", help="address to listen on (default: PARLEY_HOST, else 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: PARLEY_PORT, else 8000)"
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (default: %(default)s)"
    )
    serve.set_defaults(command=serve_command)

    migrate = commands.add_parser("migrate", help="apply pending SQL migrations")
    migrate.set_defaults(command=migrate_command)

    ingest = commands.add_parser(
        "ingest",
        help="ingest the catalog's knowledge collections (incremental)",
        description="Bring the stored chunks in line with knowledge/<collection>/: new and "
        "changed files are ingested, unchanged ones skipped, removed ones removed; without a "
        "collection, collections whose folder is gone are removed too. serve (at start and on "
        "reload) does the same for the folders it has, but never removes a collection.",
    )
    ingest.add_argument("collection", nargs="?", help="only this collection (default: all)")
    ingest.set_defaults(command=ingest_command)

    token = commands.add_parser("token", help="mint a JWT with the configured secret")
    token.add_argument("--user", required=True)
    token.add_argument("--name")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--admin", action="store_true")
    token.set_defaults(command=token_command)

    check = commands.add_parser("check", help="validate configuration and catalog")
    check.add_argument(
        "--offline", action="store_true", help="check tool files only; start no MCP server"
    )
    check.set_defaults(command=check_command)

    reload = commands.add_parser("reload", help="ask a running server to reload the catalog")
    reload.add_argument("--url", help="server URL (default http://PARLEY_HOST:PARLEY_PORT)")
    reload.set_defaults(command=reload_command)
    return parser


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from parley.examples.orders import ORDERS_URL_ENV, serve_unless_configured
    from parley.observability.workers import MetricsPortUnavailable, metrics_for_serve
    from parley.preflight import port_problem
    from parley.storage.embedded import EmbeddedUnavailable, embedded_storage
    from parley.transport.head_timeout import HeadTimeoutProtocol

    host = args.host or settings.host
    port = args.port or settings.port
    # Before the check: the shipped tools' files name the service's URL.
    examples = serve_unless_configured()
    if examples is not None:
        log.warning(
            "EXAMPLE ORDER SERVICE on %s for the shipped lookup_order and create_ticket tools"
            " (set %s to use your own)",
            examples.url,
            ORDERS_URL_ENV,
        )
    # Once serving, output is log lines (JSON ones with PARLEY_LOG_FORMAT=json).
    if check_command(settings, args, say=log.info) != 0:
        return 1
    # Before the banner and the embedded servers: a second Parley on a taken
    # port must leave the first one's servers alone.
    problem = port_problem(host, port)
    if problem is not None:
        print(f"parley: {problem}", file=sys.stderr)
        return 2
    try:
        with (
            metrics_for_serve(
                data_dir=settings.data_dir,
                workers=args.workers,
                host=settings.metrics_host,
                port=settings.metrics_port,
                token=settings.metrics_token,
                serving_port=port,
            ),
            embedded_storage(
                settings.data_dir,
                need_postgres=settings.database_url is None,
                need_redis=settings.redis_url is None,
            ) as embedded,
        ):
            # Workers are separate processes: hand them the resolved URLs.
            if embedded.database_url:
                os.environ["DATABASE_URL"] = embedded.database_url
            if embedded.redis_url:
                os.environ["REDIS_URL"] = embedded.redis_url
            _announce(load_settings(), host, port, embedded)
            # uvicorn re-raises SIGTERM after its graceful shutdown; turn it
            # into SystemExit so the embedded servers are stopped on the way out.
            signal.signal(signal.SIGTERM, _exit_quietly)
            uvicorn.run(
                "parley.factory:app",
                factory=True,
                host=host,
                port=port,
                workers=args.workers,
                http=HeadTimeoutProtocol,
                ws_max_size=settings.max_frame_bytes,
                ws_per_message_deflate=settings.ws_deflate,
                proxy_headers=True,
                log_level=settings.log_level.lower(),
                # Applied again in every worker: one format for all their lines.
                log_config=logging_config(settings.log_format, settings.log_level),
            )
    except (EmbeddedUnavailable, MetricsPortUnavailable) as error:
        print(f"parley: {error}", file=sys.stderr)
        return 2
    return 0


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _announce(settings: Settings, host: str, port: int, embedded: EmbeddedStorage) -> None:
    model = settings.default_model
    lines = [f"Parley on http://{host}:{port}  (model {model})"]
    if model.provider == "demo":
        lines.append(
            "  DEMO MODEL: offline canned replies; set OPENAI_API_KEY or ANTHROPIC_API_KEY"
        )
    started = [
        name
        for name, url in (("Postgres", embedded.database_url), ("Redis", embedded.redis_url))
        if url is not None
    ]
    if started:
        lines.append(
            f"  EMBEDDED {' and '.join(started)} in {settings.data_dir}/ (development only)"
        )
    if settings.dev_login_enabled:
        lines.append("  DEV SIGN-IN enabled: anyone who can reach this port can sign in")
    for line in lines:
        log.warning(line)


def migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    from parley.preflight import database_problem
    from parley.storage.database import create_pool, migrate

    if settings.database_url is None:
        print(
            "parley: set DATABASE_URL to migrate (serve migrates embedded Postgres itself)",
            file=sys.stderr,
        )
        return 2
    problem = asyncio.run(database_problem(settings.database_url))
    if problem is not None:
        print(f"parley: {problem}", file=sys.stderr)
        return 2

    async def run() -> list[str]:
        assert settings.database_url is not None
        pool = await create_pool(settings.database_url, max_size=1)
        try:
            return await migrate(pool)
        finally:
            await pool.close()

    applied = asyncio.run(run())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def ingest_command(settings: Settings, args: argparse.Namespace) -> int:
    from parley.knowledge.ingest import IngestReport
    from parley.knowledge.service import Knowledge
    from parley.llm.models import PriceTable
    from parley.preflight import database_problem
    from parley.storage.database import create_pool, migrate

    if settings.database_url is None:
        print(
            "parley: set DATABASE_URL to ingest (serve ingests into embedded Postgres itself)",
            file=sys.stderr,
        )
        return 2
    knowledge_names = sorted(_collections(settings))
    if args.collection is not None and args.collection not in knowledge_names:
        known = ", ".join(knowledge_names) or "none"
        print(f"parley: no collection {args.collection!r} (knowledge/*/: {known})", file=sys.stderr)
        return 2
    problem = asyncio.run(database_problem(settings.database_url))
    if problem is not None:
        print(f"parley: {problem}", file=sys.stderr)
        return 2
    prices = PriceTable.defaults()
    if settings.prices_file is not None:
        prices = PriceTable.load(settings.prices_file)

    async def run() -> list[IngestReport]:
        assert settings.database_url is not None
        pool = await create_pool(settings.database_url, max_size=2)
        try:
            await migrate(pool)
            knowledge = await Knowledge.start(pool, settings, prices.cost_usd)
            print(knowledge.describe(), file=sys.stderr)
            try:
                reports = await knowledge.sync(args.collection, prune=True, progress=True)
            finally:
                await knowledge.aclose()
        finally:
            await pool.close()
        return reports

    reports = asyncio.run(run())
    for report in reports:
        print(report.summary())
        for failure in report.failed:
            print(f"  failed: {failure}", file=sys.stderr)
    return 1 if any(report.failed for report in reports) else 0


def _collections(settings: Settings) -> set[str]:
    from parley.knowledge.folders import declared_collections

    return declared_collections(settings.catalog)


def token_command(settings: Settings, args: argparse.Namespace) -> int:
    from parley.auth.tokens import ensure_dev_secret, mint_token

    if settings.jwt_public_key or settings.jwks_url:
        print(
            "parley: tokens are issued by your identity provider (public-key mode)", file=sys.stderr
        )
        return 2
    secret = settings.jwt_secret or ensure_dev_secret(settings.data_dir)
    print(
        mint_token(
            secret,
            user_id=args.user,
            name=args.name,
            ttl_seconds=args.ttl,
            admin=args.admin,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
    )
    return 0


def reload_command(settings: Settings, args: argparse.Namespace) -> int:
    """POST /v1/admin/reload with a short-lived admin token (HS256 mode)."""
    import json
    import urllib.error
    import urllib.request

    from parley.auth.tokens import ensure_dev_secret, mint_token

    if settings.jwt_public_key or settings.jwks_url:
        print(
            "parley: in public-key mode, call POST /v1/admin/reload with an admin token "
            "from your identity provider, or send SIGHUP",
            file=sys.stderr,
        )
        return 2
    secret = settings.jwt_secret or ensure_dev_secret(settings.data_dir)
    token = mint_token(
        secret,
        user_id="parley-cli",
        ttl_seconds=60,
        admin=True,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    request = urllib.request.Request(
        f"{url}/v1/admin/reload", method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(json.loads(response.read())["version"])
            return 0
    except urllib.error.HTTPError as error:
        print(f"parley: reload refused: {error.read().decode(errors='replace')}", file=sys.stderr)
    except OSError as error:
        print(f"parley: cannot reach {url}: {error}", file=sys.stderr)
    return 1


def check_command(
    settings: Settings, args: argparse.Namespace, *, say: Callable[[str], object] = print
) -> int:
    from parley.auth.tokens import TokenVerifier
    from parley.catalog import CatalogError, load_catalog
    from parley.examples.orders import environ_as_served
    from parley.llm.providers import load_specs, summary, unknown_providers
    from parley.preflight import storage_problems
    from parley.tools.check import check_tools

    # Every check runs, so that all problems are listed at once.
    problems: list[str] = []
    if settings.has_configured_jwt_key:  # a generated dev secret needs no checking
        try:
            TokenVerifier.from_settings(settings, None)
        except ConfigurationError as error:
            problems += error.problems
    catalog = None
    try:
        catalog = load_catalog(settings.catalog)
    except CatalogError as error:
        problems += error.problems
    problems += asyncio.run(storage_problems(settings))
    # serve has no --offline: it starts the MCP servers itself right after.
    tools = check_tools(
        settings.catalog,
        offline=getattr(args, "offline", True),
        environ=environ_as_served(os.environ),
    )
    problems += tools.problems
    try:
        specs = load_specs(settings.catalog, os.environ)
        problems += unknown_providers(specs, settings.default_model, catalog)
    except CatalogError as error:
        problems += error.problems
    if problems:
        print("parley: invalid catalog or configuration:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    assert catalog is not None  # no problems: it loaded
    say(f"configuration ok; catalog {catalog.version}: {', '.join(sorted(catalog.agents))}")
    say(tools.summary())
    say(summary(specs))
    return 0

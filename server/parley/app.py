"""The Starlette application: routes, middleware, and the services' lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute

from parley import heap
from parley.auth.routes import auth_routes
from parley.auth.tokens import TokenVerifier, ensure_dev_secret
from parley.catalog import CatalogError
from parley.config import Settings
from parley.errors import ParleyError
from parley.observability import metrics
from parley.observability.endpoint import metrics_routes
from parley.observability.request_id import RequestIdMiddleware
from parley.observability.tracing import Tracing
from parley.services import Services
from parley.storage.keys import Keys
from parley.transport.compat.anthropic_api import anthropic_routes
from parley.transport.compat.openai_api import openai_routes
from parley.transport.compat.paths import ERROR_SHAPES
from parley.transport.cors import CorsMiddleware, catalog_guest_sites
from parley.transport.guest import guest_routes
from parley.transport.http import PrincipalMiddleware, handle_error, handle_http_exception
from parley.transport.knowledge import knowledge_routes
from parley.transport.openapi import openapi_routes
from parley.transport.operators import operator_routes
from parley.transport.ops import ops_routes
from parley.transport.ratelimit import RateLimitMiddleware, UserRateLimiter
from parley.transport.replies import reply_routes
from parley.transport.rest import rest_routes
from parley.transport.review import review_routes
from parley.transport.user_actions import user_action_routes
from parley.transport.websocket import websocket_endpoint
from parley.web.routes import web_routes
from parley.web.widget import widget_routes

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, tracing: Tracing | None = None) -> Starlette:
    """Build the app; storage URLs in ``settings`` must already be resolved.

    ``tracing`` defaults to what the OTEL_* variables configure.
    """
    assert settings.redis_url is not None
    if tracing is None:
        tracing = Tracing.from_environment()
    dev_secret = None if settings.has_configured_jwt_key else ensure_dev_secret(settings.data_dir)
    verifier = TokenVerifier.from_settings(settings, dev_secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(settings, verifier, tracing)
        app.state.services = services
        _reload_on_sighup(services)
        heap.settle()  # last: what start-up made is what the collector stops walking
        metrics.time_garbage_collections()
        pauses = asyncio.create_task(metrics.keep_recording_collection_pauses())
        try:
            yield
        finally:
            pauses.cancel()
            with _interrupt_again() as stop_now:
                await services.close(stop_now=stop_now)

    routes = [
        *ops_routes(),
        *metrics_routes(settings.metrics_token),
        *auth_routes(verifier, settings, dev_secret),
        *rest_routes(),
        *guest_routes(),
        *openai_routes(),
        *anthropic_routes(),
        *knowledge_routes(),
        *reply_routes(),
        *user_action_routes(),
        *operator_routes(),
        *review_routes(),
        WebSocketRoute("/ws", websocket_endpoint),
        *web_routes(
            Path(settings.web_dir),
            client_dir=Path(settings.client_dir),
            dev_login_enabled=settings.dev_login_enabled,
            max_message_chars=settings.max_message_chars,
        ),
        *widget_routes(Path(settings.web_dir), demo_enabled=settings.dev_login_enabled),
    ]
    routes += openapi_routes(routes, Path(settings.web_dir))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(
                CorsMiddleware,
                allowed_origins=settings.allowed_origins,
                guest_sites=catalog_guest_sites,
            ),
            Middleware(PrincipalMiddleware),
            Middleware(
                RateLimitMiddleware,
                limiter=UserRateLimiter(
                    settings.redis_url,
                    settings.rest_rate_limit,
                    namespace=Keys(settings.redis_prefix).rate_limits,
                    fail_open=settings.rate_limit_fail_open,
                ),
                error_shapes=ERROR_SHAPES,
            ),
        ],
        exception_handlers={
            HTTPException: handle_http_exception,
            ParleyError: handle_error,
            Exception: handle_error,
        },
    )
    return app


@contextlib.contextmanager
def _interrupt_again() -> Iterator[asyncio.Event]:
    """An event a second Ctrl-C sets while the block runs (the first one began the shutdown).

    The server's own SIGINT handler is put back afterwards. Outside the main
    thread (tests that run the app in process) signals cannot be handled, and
    the event is never set.
    """
    stop_now = asyncio.Event()
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, stop_now.set)
    except (NotImplementedError, RuntimeError, ValueError):
        yield stop_now
        return
    try:
        yield stop_now
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)


def _reload_on_sighup(services: Services) -> None:
    """``kill -HUP`` swaps in a new catalog, or keeps the old one if it is bad."""

    async def reload() -> None:
        try:
            catalog = await services.reload()
        except CatalogError as error:
            log.error(
                "catalog reload rejected; keeping the old one:\n  %s", "\n  ".join(error.problems)
            )
            return
        log.info("catalog reloaded: version %s", catalog.version)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task[None]] = set()  # a task nobody holds may be collected

        def on_hangup() -> None:
            task = loop.create_task(reload())
            running.add(task)
            task.add_done_callback(running.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)

"""Helpers for the browser tests: finding Chromium, driving the chat UI, cutting the network.

The UI publishes its state on DOM attributes (``body[data-connection]``,
``article.msg-assistant[data-status][data-seq]`` ... see docs/ui.md), so the
helpers wait on those instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Dialog,
    Locator,
    Page,
    Playwright,
    ViewportSize,
    WebSocket,
    WebSocketRoute,
    async_playwright,
    expect,
)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SYSTEM_CHROMIUM = "/usr/bin/chromium"
NON_EMPTY = re.compile(r".+")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000  # what an expect() or a page action of the browser tests waits

# Reports every CSP / Trusted Types violation the page sees to the test process
# (window.__parleyCspViolation is a Playwright binding, installed per context).
CSP_REPORTER = """
document.addEventListener('securitypolicyviolation', (event) => {
  window.__parleyCspViolation({
    directive: event.effectiveDirective || event.violatedDirective,
    blocked: event.blockedURI,
    sample: event.sample,
    source: event.sourceFile,
  });
});
"""


def find_chromium(playwright: Playwright) -> str | None:
    """``PARLEY_CHROMIUM``, then Debian's ``/usr/bin/chromium``, then playwright's own build."""
    configured = os.environ.get("PARLEY_CHROMIUM")
    if configured:
        found = shutil.which(configured) or (configured if Path(configured).is_file() else None)
        if found is None:
            raise FileNotFoundError(f"PARLEY_CHROMIUM={configured} does not exist")
        return found
    if Path(SYSTEM_CHROMIUM).is_file():
        return SYSTEM_CHROMIUM
    with contextlib.suppress(Exception):  # no managed browser for this platform
        managed = playwright.chromium.executable_path
        if managed and Path(managed).is_file():
            return managed
    return None


@dataclass
class PageWatch:
    """What a context's pages reported that a test did not ask for."""

    csp_violations: list[dict[str, Any]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on(
            "console",
            lambda message: (
                self.console_errors.append(message.text) if message.type == "error" else None
            ),
        )

    @property
    def csp_console_errors(self) -> list[str]:
        """Console lines Chromium writes for CSP and Trusted Types refusals."""
        markers = ("Content Security Policy", "Trusted Type", "TrustedHTML", "TrustedScript")
        return [text for text in self.console_errors if any(m in text for m in markers)]


async def watch_context(context: BrowserContext) -> PageWatch:
    watch = PageWatch()

    def report(violation: dict[str, Any]) -> None:
        watch.csp_violations.append(violation)

    await context.expose_function("__parleyCspViolation", report)
    await context.add_init_script(script=CSP_REPORTER)
    return watch


class WatchedContexts:
    """The browser contexts of one test, and every page opened in them, watched.

    ``close`` closes them and fails the test if a page broke the CSP, threw an
    uncaught error or opened a dialog (an ``alert()`` some markup managed to run).
    """

    def __init__(self, browser: Browser, base_url: str, timeout_ms: int) -> None:
        self.browser = browser
        self.base_url = base_url
        self.timeout_ms = timeout_ms
        self.contexts: list[tuple[BrowserContext, PageWatch]] = []
        self.dialogs: list[str] = []

    async def context(
        self, *, viewport: ViewportSize = DESKTOP, base_url: str | None = None, **options: Any
    ) -> BrowserContext:
        context = await self.browser.new_context(
            base_url=base_url or self.base_url, viewport=viewport, **options
        )
        context.set_default_timeout(self.timeout_ms)
        self.contexts.append((context, await watch_context(context)))
        return context

    def watch(self, context: BrowserContext) -> PageWatch:
        return next(watch for known, watch in self.contexts if known is context)

    async def page(self, context: BrowserContext | None = None, **options: Any) -> Page:
        """A new page in ``context``, or in a new context made with ``options``."""
        context = context or await self.context(**options)
        page = await context.new_page()
        self.watch(context).attach(page)
        page.on("dialog", self._on_dialog)
        return page

    async def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()

    async def close(self) -> None:
        problems = []
        for context, watch in self.contexts:
            await context.close()
            if watch.csp_violations or watch.csp_console_errors:
                problems.append(
                    f"CSP violations: {watch.csp_violations + watch.csp_console_errors}"
                )
            if watch.page_errors:
                problems.append(f"uncaught page errors: {watch.page_errors}")
        if self.dialogs:
            problems.append(f"dialogs opened: {self.dialogs}")
        assert not problems, problems


async def session_token(context: BrowserContext) -> str:
    """The JWT in the httpOnly session cookie (it also works as a bearer token)."""
    for cookie in await context.cookies():
        if cookie["name"] == "parley_session":
            return cookie["value"]
    raise AssertionError("no parley_session cookie")


class ChatPage:
    """The chat UI in one tab."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.body = page.locator("body")
        self.input = page.locator("#message-input")
        self.replies = page.locator("article.msg-assistant")
        self.user_messages = page.locator("article.msg-user")
        self.conversations = page.locator("#conversation-list li.conv-item")
        self.sockets: list[WebSocket] = []  # every WebSocket the tab opened, in order
        page.on("websocket", lambda socket: self.sockets.append(socket))

    async def open(self, url: str = "/") -> None:
        await self.page.goto(url)
        await expect(self.body).not_to_have_attribute("data-screen", "loading")

    async def sign_in(self, name: str) -> None:
        await expect(self.body).to_have_attribute("data-screen", "signin")
        await self.page.fill("#signin-name", name)
        await self.page.click("#signin-submit")
        await expect(self.body).to_have_attribute("data-screen", "app")
        await expect(self.body).to_have_attribute("data-connection", "open")

    async def sign_in_with_token(self, token: str) -> None:
        """The sign-in screen without dev login: paste an access token (JWT)."""
        await expect(self.body).to_have_attribute("data-screen", "signin")
        await self.page.fill("#signin-token", token)
        await self.page.click("#signin-submit")
        await expect(self.body).to_have_attribute("data-screen", "app")
        await expect(self.body).to_have_attribute("data-connection", "open")

    async def pick_agent(self, agent_id: str) -> None:
        radio = self.page.locator(f'#agent-picker input[name="agent"][value="{agent_id}"]')
        inner = self.page.locator(f'input[name="agent"][value="{agent_id}"]')
        await self.page.locator("#agent-picker label.agent-card").filter(has=inner).click()
        await expect(radio).to_be_checked()

    async def send(self, text: str) -> Locator:
        """Put ``text`` in the message box and press Enter.

        Returns the bubble the reply to it will appear in (the next one; it
        may not exist yet: expectations on the locator wait for it).
        """
        await expect(self.body).to_have_attribute("data-busy", "false")
        shown = await self.replies.count()
        await self.input.fill(text)
        await self.input.press("Enter")
        return self.replies.nth(shown)

    @staticmethod
    async def wait_reply(reply: Locator, status: str = "complete") -> Locator:
        await expect(reply).to_have_attribute("data-status", status)
        return reply

    async def conversation_id(self) -> str:
        chat = self.page.locator("#chat")
        await expect(chat).to_have_attribute("data-conversation-id", NON_EMPTY)
        value = await chat.get_attribute("data-conversation-id")
        assert value
        return value

    async def reload_in(self, conversation_id: str) -> None:
        """Reload the tab; wait until it is back in ``conversation_id``, its session ready."""
        await self.page.reload()
        await expect(self.body).to_have_attribute("data-screen", "app")
        await expect(self.page.locator("#chat")).to_have_attribute(
            "data-conversation-id", conversation_id
        )
        await expect(self.body).to_have_attribute("data-session", "ready")

    def reply_of(self, reply_id: str | None) -> Locator:
        """The reply ``reply_id`` in the conversation shown."""
        return self.page.locator(f'article.msg-assistant[data-reply-id="{reply_id}"]')

    async def settled(self) -> None:
        """Wait two animation frames, so text received so far is rendered (once per frame)."""
        await self.page.evaluate(
            "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
        )

    async def seq(self, reply: Locator) -> int:
        return int(await reply.get_attribute("data-seq") or 0)

    async def wait_seq_at_least(self, reply: Locator, seq: int) -> int:
        """Wait until the reply shows at least ``seq`` deltas; returns the seq shown then."""
        handle = await reply.element_handle()
        await self.page.wait_for_function(
            "([node, seq]) => Number(node.dataset.seq || 0) >= seq", arg=[handle, seq]
        )
        return await self.seq(reply)

    async def rendered_markdown(self, text: str) -> str:
        """``text`` through the page's own Markdown pipeline, as HTML."""
        html: str = await self.page.evaluate(
            """async (text) => {
                const { renderMarkdown } = await import('/static/js/markdown.js');
                const box = document.createElement('div');
                box.append(renderMarkdown(text));
                return box.innerHTML;
            }""",
            text,
        )
        return html


class FrameGate:
    """Sits between a tab and the server's WebSocket (``page.route_web_socket``).

    Frames from the page are recorded in ``sent`` and go through unless
    ``drop_from_page`` says to lose them. Frames from the server go through
    unless ``hold`` says to keep them back; ``release`` then delivers the kept
    frames that match, in their order. ``sever`` closes the latest connection
    on both sides (the page reconnects through the gate).
    """

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.held: list[str] = []
        self.hold: Callable[[dict[str, Any]], bool] = lambda frame: False
        self.drop_from_page: Callable[[dict[str, Any]], bool] = lambda frame: False
        self._page_sent = asyncio.Event()
        self._server_held = asyncio.Event()
        self._routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    async def install(self, page: Page, pattern: str = "**/ws") -> FrameGate:
        await page.route_web_socket(pattern, self._route)
        return self

    def _route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        self._routes.append((page_side, server_side))

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            self.sent.append(frame)
            self._page_sent.set()
            if not self.drop_from_page(frame):
                server_side.send(message)

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if self.hold(frame):
                self.held.append(message if isinstance(message, str) else message.decode())
                self._server_held.set()
            else:
                page_side.send(message)

        page_side.on_message(from_page)
        server_side.on_message(from_server)

    async def wait_sent(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first frame the page sent that ``match``es, waiting for it if need be."""
        while True:
            for frame in self.sent:
                if match(frame):
                    return frame
            self._page_sent.clear()
            await self._page_sent.wait()

    async def wait_held(self, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first held server frame that ``match``es, waiting for it if need be."""
        while True:
            for message in self.held:
                frame: dict[str, Any] = json.loads(message)
                if match(frame):
                    return frame
            self._server_held.clear()
            await self._server_held.wait()

    def release(self, match: Callable[[dict[str, Any]], bool] = lambda frame: True) -> int:
        """Deliver the held frames that ``match`` to the page (to its latest socket)."""
        keep: list[str] = []
        delivered = 0
        for message in self.held:
            if match(json.loads(message)):
                self._routes[-1][0].send(message)
                delivered += 1
            else:
                keep.append(message)
        self.held = keep
        return delivered

    async def sever(self) -> None:
        page_side, server_side = self._routes[-1]
        await server_side.close(code=1001, reason="gate severed")
        await page_side.close(code=1011, reason="gate severed")


class TcpProxy:
    """A TCP relay the browser talks through, so a test can cut its connections.

    ``sever()`` aborts every open connection (no WebSocket close frame, like a
    dropped network) and, while ``down``, new connections are refused by closing
    them at once. The Host and Origin the server sees are the proxy's, which
    is consistent: the page is loaded through the proxy too.
    """

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.target_port = target_port
        self.down = False
        self.refused = 0
        self.refusal = asyncio.Event()  # set when a connection was refused while down
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.sever()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def sever(self) -> None:
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.refused += 1
            self.refusal.set()
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._transports.update({writer.transport, up_writer.transport})
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for side in (writer, up_writer):
                self._transports.discard(side.transport)
                side.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


@contextlib.asynccontextmanager
async def launched_browser(timeout_ms: int) -> AsyncIterator[Browser]:
    """Chromium for a test module: a failure under CI=true when none is found, a
    skip elsewhere (README: browser tests); ``timeout_ms`` for every expect()."""
    async with async_playwright() as playwright:
        try:
            path = find_chromium(playwright)
        except FileNotFoundError as error:
            pytest.fail(str(error))
        if path is None:
            if os.environ.get("CI") == "true":
                pytest.fail("no Chromium found (CI=true): install chromium or set PARLEY_CHROMIUM")
            pytest.skip("no Chromium found; set PARLEY_CHROMIUM")
        expect.set_options(timeout=timeout_ms)
        instance = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()

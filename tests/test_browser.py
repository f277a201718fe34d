"""The chat UI at ``/`` in headless Chromium, against a real Parley server.

One browser and one server (with dev sign-in on) serve the whole module; each
test gets fresh browser contexts (cookies, storage) and signs in under a
name of its own, so tests never see each other's conversations. The LLM is
the session's fake vendor. Tests wait on the state the UI mirrors into the
DOM (``data-status``, ``data-seq``, ``data-connection`` ...; docs/ui.md),
never on sleeps.

``PARLEY_SCREENSHOTS=1`` makes the realistic-conversation test refresh
``docs/screenshots/*.png``.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Response,
    ViewportSize,
    expect,
)

from support.browser import (
    TIMEOUT_MS,
    ChatPage,
    TcpProxy,
    WatchedContexts,
    session_token,
)
from support.client import ChatClient, Reply
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
PHONE: ViewportSize = {"width": 375, "height": 812}


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_server(server_env: dict[str, str]) -> Iterator[ParleyServer]:
    with ParleyServer({**server_env, "PARLEY_DEV_LOGIN": "true"}, name="parley-web") as instance:
        yield instance


class Web(WatchedContexts):
    """Opens browser contexts and tabs for one test; checks them when it ends."""

    def __init__(self, browser: Browser, server: ParleyServer) -> None:
        super().__init__(browser, server.url, TIMEOUT_MS)
        self.server = server

    async def tab(self, context: BrowserContext | None = None, **options: Any) -> ChatPage:
        return ChatPage(await self.page(context, **options))

    async def signed_in(
        self, agent: str | None = "agent_gamma", *, name: str | None = None, **options: Any
    ) -> ChatPage:
        """A new tab in a new context, signed in as a new user, with ``agent`` picked."""
        chat = await self.tab(**options)
        await chat.open()
        await chat.sign_in(name or f"Tester {uuid.uuid4().hex[:10]}")
        if agent:
            await chat.pick_agent(agent)
        return chat

    async def rest(self, chat: ChatPage, method: str, path: str) -> httpx.Response:
        """A REST call as the tab's user, straight to the server."""
        token = await session_token(chat.page.context)
        async with httpx.AsyncClient(base_url=self.server.url, timeout=10) as client:
            return await client.request(method, path, headers={"Authorization": f"Bearer {token}"})

    async def stored_messages(self, chat: ChatPage, conversation_id: str) -> list[dict[str, Any]]:
        response = await self.rest(chat, "GET", f"/v1/conversations/{conversation_id}")
        assert response.status_code == 200, response.text
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    async def observer(self, chat: ChatPage) -> ChatClient:
        """A WebSocket client of the same user, connected to the server directly."""
        return await ChatClient.connect(self.server.ws_url, await session_token(chat.page.context))


@pytest.fixture
async def web(browser: Browser, web_server: ParleyServer, fake: FakeLLM) -> AsyncIterator[Web]:
    session = Web(browser, web_server)
    yield session
    await session.close()


async def all_deltas(web: Web, chat: ChatPage, reply_id: str) -> Reply:
    """Every delta of a finished reply, replayed from the server's reply log."""
    async with await web.observer(chat) as observer:
        await observer.send({"type": "resume", "reply_id": reply_id, "after_seq": 0})
        return await observer.reply(reply_id)


async def assert_shows(chat: ChatPage, reply: Locator, text: str) -> None:
    """The reply's body is exactly ``text`` rendered, each word once."""
    body = reply.locator(".msg-body")
    assert ((await body.text_content()) or "").strip() == text.strip()
    assert await body.inner_html() == await chat.rendered_markdown(text)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --- sending and streaming --------------------------------------------------------

MARKDOWN_REPLY = (
    "Here is what to try:\n\n"
    "1. Restart the router\n"
    "2. Check the cable\n\n"
    "```bash\nping -c 3 example.com\n```\n\n"
    "| Setting | Value |\n"
    "| --- | --- |\n"
    "| DNS | 1.1.1.1 |\n\n"
    "See [the guide](https://example.com/guide) for **more**."
)


async def test_reply_streams_as_markdown_and_matches_the_stored_text(
    web: Web, fake: FakeLLM
) -> None:
    # Chunks cut through list items, the fence and the table on purpose.
    fake.enqueue(Script(chunks=pieces(MARKDOWN_REPLY, 7), delay=0.03))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.send("My DNS lookups fail")

    # It streams: a bubble with some text but no final status yet.
    await chat.page.wait_for_function(
        """() => [...document.querySelectorAll('article.msg-assistant')].some(
               (n) => n.dataset.status === 'streaming' && Number(n.dataset.seq) >= 1)"""
    )
    await chat.wait_reply(reply, "complete")
    body = reply.locator(".msg-body")
    await expect(body.locator("ol > li")).to_have_text(["Restart the router", "Check the cable"])
    await expect(body.locator("pre > code.language-bash")).to_have_text("ping -c 3 example.com")
    await expect(body.locator("table th")).to_have_text(["Setting", "Value"])
    await expect(body.locator("table td")).to_have_text(["DNS", "1.1.1.1"])
    link = body.locator("a", has_text="the guide")
    await expect(link).to_have_attribute("href", "https://example.com/guide")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    await expect(body.locator("strong")).to_have_text("more")
    await expect(chat.user_messages.locator(".msg-bubble")).to_have_text(["My DNS lookups fail"])
    await expect(chat.user_messages).to_have_attribute("data-state", "accepted")
    await expect(chat.body).to_have_attribute("data-busy", "false")

    messages = await web.stored_messages(chat, await chat.conversation_id())
    [stored] = [m for m in messages if m["role"] == "assistant"]
    assert stored["content"] == MARKDOWN_REPLY
    assert stored["status"] == "complete"
    await expect(reply).to_have_attribute("data-message-id", stored["id"])
    # What is on screen is exactly the stored text through the page's Markdown pipeline.
    assert await body.inner_html() == await chat.rendered_markdown(stored["content"])
    # A listed conversation, titled after the first message.
    await expect(chat.conversations).to_have_count(1)


async def test_shift_enter_inserts_a_newline_and_enter_sends(web: Web, fake: FakeLLM) -> None:
    chat = await web.signed_in("agent_gamma")
    keyboard = chat.page.keyboard
    await chat.input.click()
    await keyboard.type("first line")
    await keyboard.press("Shift+Enter")
    await keyboard.type("second line")
    await expect(chat.input).to_have_value("first line\nsecond line")
    await expect(chat.user_messages).to_have_count(0)
    await expect(chat.body).to_have_attribute("data-busy", "false")

    await keyboard.press("Enter")
    reply = chat.replies.first
    bubble = chat.user_messages.locator(".msg-bubble")
    await expect(bubble).to_have_count(1)
    assert await bubble.text_content() == "first line\nsecond line"
    await expect(chat.input).to_have_value("")
    await chat.wait_reply(reply, "complete")
    messages = await web.stored_messages(chat, await chat.conversation_id())
    assert messages[0]["role"] == "user"
    assert messages[0]["content"] == "first line\nsecond line"


@pytest.mark.parametrize("how", ["stop button", "escape"])
async def test_stop_keeps_the_partial_reply_marked_stopped(
    web: Web, fake: FakeLLM, how: str
) -> None:
    partial = "Step one: open the settings panel. "
    fake.enqueue(Script(chunks=[partial], hold=True))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.send("Walk me through it")
    await chat.wait_seq_at_least(reply, 1)
    if how == "escape":
        await chat.page.keyboard.press("Escape")
    else:
        await chat.page.click("#stop-button")
    await chat.wait_reply(reply, "cancelled")
    await expect(reply.locator(".msg-body")).to_have_text(partial.strip())
    await expect(reply.locator(".msg-status")).to_have_text("Stopped")
    await expect(chat.body).to_have_attribute("data-busy", "false")
    await expect(chat.page.locator("#send-button")).to_be_visible()

    messages = await web.stored_messages(chat, await chat.conversation_id())
    [stored] = [m for m in messages if m["role"] == "assistant"]
    assert (stored["content"], stored["status"]) == (partial, "cancelled")


async def test_reload_mid_reply_picks_up_the_running_reply(web: Web, fake: FakeLLM) -> None:
    chunks = [f"Part {n}. " for n in range(1, 9)]
    fake.enqueue(Script(chunks=chunks, delay=0.1, hold=True))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.send("Tell me in parts")
    await chat.wait_seq_at_least(reply, 2)
    reply_id = await reply.get_attribute("data-reply-id")
    conversation_id = await chat.conversation_id()

    await chat.reload_in(conversation_id)
    live = chat.reply_of(reply_id)
    # Still running (the fake holds the stream open): picked up from active_reply.
    await expect(live).to_have_attribute("data-status", "streaming")
    await expect(chat.body).to_have_attribute("data-busy", "true")
    await asyncio.to_thread(fake.wait_for_held, 1)
    fake.release()

    await expect(live).to_have_attribute("data-status", "complete")
    await expect(chat.replies).to_have_count(1)
    await expect(chat.user_messages).to_have_count(1)
    full = "".join(chunks)
    await assert_shows(chat, live, full)
    deltas = await all_deltas(web, chat, str(reply_id))
    assert deltas.text == full
    assert await chat.seq(live) == len(deltas.deltas)
    messages = await web.stored_messages(chat, conversation_id)
    assert [m["content"] for m in messages if m["role"] == "assistant"] == [full]


async def test_socket_cut_mid_reply_resumes_without_gap_or_duplicate(
    web: Web, web_server: ParleyServer, fake: FakeLLM
) -> None:
    # The browser talks to the server through a relay that can cut its
    # connections abruptly (no close frame) and refuse new ones for a while.
    proxy = await TcpProxy(web_server.port).start()
    try:
        chunks = [f"w{n:02d} " for n in range(1, 61)]
        fake.enqueue(Script(chunks=chunks, delay=0.04, hold=True))
        chat = await web.signed_in("agent_gamma", base_url=proxy.url)
        reply = await chat.send("Count to sixty")
        await chat.wait_seq_at_least(reply, 5)
        reply_id = str(await reply.get_attribute("data-reply-id"))

        proxy.down = True
        proxy.sever()
        await expect(chat.body).to_have_attribute("data-connection", "closed")
        await chat.settled()
        at_cut = await chat.seq(reply)
        # The reply goes on without the page: watch it from another connection.
        async with await web.observer(chat) as observer:
            await observer.send({"type": "resume", "reply_id": reply_id, "after_seq": at_cut})
            missed = await observer.reply(reply_id, until_seq=at_cut + 5)
        assert missed.seqs[0] == at_cut + 1
        await chat.settled()
        assert await chat.seq(reply) == at_cut  # nothing reached the page meanwhile
        await expect(reply).to_have_attribute("data-status", "streaming")

        # The page tried to reconnect at least once while the network was down.
        await asyncio.wait_for(proxy.refusal.wait(), TIMEOUT_MS / 1000)
        proxy.down = False
        await expect(chat.body).to_have_attribute("data-connection", "open")
        await asyncio.to_thread(fake.wait_for_held, 1)
        fake.release()
        await chat.wait_reply(reply, "complete")
    finally:
        await proxy.stop()

    full = "".join(chunks)
    deltas = await all_deltas(web, chat, reply_id)
    assert deltas.text == full
    assert deltas.seqs == list(range(1, len(deltas.deltas) + 1))
    assert await chat.seq(reply) == len(deltas.deltas)
    await assert_shows(chat, reply, full)
    await expect(chat.replies).to_have_count(1)
    assert len(chat.sockets) >= 2 and chat.sockets[0].is_closed()
    messages = await web.stored_messages(chat, await chat.conversation_id())
    assert [m["content"] for m in messages if m["role"] == "assistant"] == [full]


# --- conversations --------------------------------------------------------------


async def test_open_an_old_conversation_and_delete_another(web: Web, fake: FakeLLM) -> None:
    fake.enqueue(
        Script(chunks=["Clear the paper path first."]), Script(chunks=["Update the driver."])
    )
    chat = await web.signed_in("agent_gamma")
    await chat.wait_reply(await chat.send("My printer is jammed"))
    first = await chat.conversation_id()

    await chat.page.click("#new-chat")
    await expect(chat.page.locator("#chat")).to_have_attribute("data-view", "new")
    await expect(chat.replies).to_have_count(0)
    await chat.pick_agent("agent_gamma")
    await chat.wait_reply(await chat.send("My screen flickers"))
    second = await chat.conversation_id()
    assert second != first
    await expect(chat.conversations).to_have_count(2)

    # Open the first one again: its history is shown.
    old = chat.page.locator(f'#conversation-list li.conv-item[data-conversation-id="{first}"]')
    await old.locator(".conv-open").click()
    await expect(chat.page.locator("#chat")).to_have_attribute("data-conversation-id", first)
    await expect(old.locator(".conv-open")).to_have_attribute("aria-current", "page")
    await expect(chat.user_messages.locator(".msg-bubble")).to_have_text(["My printer is jammed"])
    await expect(chat.replies.locator(".msg-body")).to_have_text(["Clear the paper path first."])
    await expect(chat.replies).to_have_attribute("data-status", "complete")
    await expect(chat.page.locator("#chat-title")).to_have_text("My printer is jammed")

    # Delete the second one, after confirming.
    doomed = chat.page.locator(f'#conversation-list li.conv-item[data-conversation-id="{second}"]')
    await doomed.locator(".conv-delete").click()
    await expect(chat.page.locator("#confirm-dialog")).to_be_visible()
    await chat.page.click("#confirm-ok")
    await expect(doomed).to_have_count(0)
    await expect(chat.conversations).to_have_count(1)
    listed = (await web.rest(chat, "GET", "/v1/conversations")).json()["conversations"]
    assert [c["id"] for c in listed] == [first]
    assert (await web.rest(chat, "GET", f"/v1/conversations/{second}")).status_code == 404
    # The open conversation was not the deleted one: it stays.
    await expect(chat.page.locator("#chat")).to_have_attribute("data-conversation-id", first)


# --- security -------------------------------------------------------------------

HOSTILE_REPLY = (
    "Here you go:\n\n"
    "<script>window.__pwned=1</script>\n\n"
    'An image <img src=x onerror="window.__pwned=2"> inline.\n\n'
    "[x](javascript:window.__pwned=3) [y](JaVaScRiPt:window.__pwned=6) "
    "[z](&#106;avascript:window.__pwned=7)\n\n"
    '<svg onload="window.__pwned=4"></svg>\n\n'
    "Before <!-- hidden comment text --> after.\n\n"
    "<!-- hidden block comment text -->\n\n"
    '<iframe src="javascript:window.__pwned=5"></iframe>\n\n'
    '<a href="javascript:window.__pwned=8">raw link</a> '
    '<details open ontoggle="window.__pwned=9">d</details>\n\n'
    "![pixel](https://tracker.example/pixel.png) [data](data:text/html,<b>x</b>)\n\n"
    "The end."
)


async def test_hostile_model_output_is_rendered_inert(web: Web, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=pieces(HOSTILE_REPLY, 9), delay=0.005))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.wait_reply(await chat.send("Show me something"))
    body = reply.locator(".msg-body")
    page = chat.page

    assert await page.evaluate("typeof window.__pwned") == "undefined"
    dangerous = "script, style, svg, math, iframe, object, embed, form, details, img"
    await expect(body.locator(dangerous)).to_have_count(0)
    found = await body.evaluate(
        """(root) => {
            const all = [...root.querySelectorAll('*')];
            const comments = document.createTreeWalker(root, NodeFilter.SHOW_COMMENT);
            return {
                handlers: all.flatMap((n) => [...n.attributes].map((a) => a.name))
                             .filter((name) => name.startsWith('on')),
                hrefs: all.map((n) => n.getAttribute('href')).filter((h) => h !== null),
                srcs: all.map((n) => n.getAttribute('src')).filter((s) => s !== null),
                comments: comments.nextNode() ? 1 : 0,
            };
        }"""
    )
    assert found["handlers"] == []
    assert found["srcs"] == []
    assert found["comments"] == 0
    assert not [h for h in found["hrefs"] if not re.match(r"^(https?:|mailto:|/|#)", h)]
    text = await body.text_content() or ""
    assert "hidden comment text" not in text
    assert "hidden block comment text" not in text
    assert "<script>window.__pwned=1</script>" in text  # shown as text, not run
    assert "The end." in text

    # Clicking the neutered links does nothing either.
    for label in ("x", "y", "z"):
        await body.locator("a", has_text=re.compile(f"^{re.escape(label)}$")).click()
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    assert len(page.context.pages) == 1
    watch = web.watch(page.context)
    assert watch.csp_violations == []
    assert watch.csp_console_errors == []


def directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


async def test_page_is_served_with_a_strict_csp_and_nosniff(web: Web) -> None:
    chat = await web.tab()
    response = await chat.page.goto("/")
    assert isinstance(response, Response) and response.status == 200
    headers = await response.all_headers()
    policy = directives(headers["content-security-policy"])
    scripts = policy.get("script-src", policy.get("default-src"))
    assert scripts == ["'self'"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert "'unsafe-eval'" not in headers["content-security-policy"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert headers["x-content-type-options"] == "nosniff"
    script = await chat.page.request.get("/static/js/app.js")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "javascript" in script.headers["content-type"]
    # The page works under that policy (the fixture fails the test on any violation).
    await chat.sign_in(f"Tester {uuid.uuid4().hex[:10]}")


# --- errors ---------------------------------------------------------------------


async def test_upstream_failure_reads_as_a_sentence(web: Web, fake: FakeLLM) -> None:
    fake.enqueue(*[Script(status=500) for _ in range(6)])  # more than every retry
    chat = await web.signed_in("agent_gamma")
    reply = await chat.wait_reply(await chat.send("Are you there?"), "failed")
    status = reply.locator(".msg-status")
    await expect(status).to_have_attribute("data-code", "upstream_unavailable")
    await expect(status).to_contain_text("The model provider is unavailable right now.")
    assert "upstream_unavailable" not in await status.inner_text()
    await expect(chat.body).to_have_attribute("data-busy", "false")


async def test_message_while_busy_reads_as_a_sentence(web: Web, fake: FakeLLM) -> None:
    chat = await web.signed_in("agent_gamma")
    await chat.wait_reply(await chat.send("First question"))
    conversation_id = await chat.conversation_id()

    # A second tab on the same conversation (tabs do not live-sync).
    other = await web.tab(chat.page.context)
    await other.open()
    await expect(other.body).to_have_attribute("data-screen", "app")
    await other.page.locator(
        f'#conversation-list li.conv-item[data-conversation-id="{conversation_id}"] .conv-open'
    ).click()
    await expect(other.replies).to_have_count(1)
    await expect(other.body).to_have_attribute("data-session", "ready")

    fake.enqueue(Script(chunks=["Working on it. "], hold=True))
    running = await chat.send("Second question")
    await chat.wait_seq_at_least(running, 1)
    await other.send("Third question")
    failed = other.user_messages.last
    await expect(failed).to_have_attribute("data-state", "failed")
    error = failed.locator(".msg-error")
    await expect(error).to_have_attribute("data-code", "busy")
    await expect(error).to_contain_text("A reply is still being written.")
    await expect(failed.locator(".msg-retry")).to_be_visible()
    await expect(other.body).to_have_attribute("data-busy", "false")

    fake.release()
    await chat.wait_reply(running)

    # Once the first tab's reply is done, Retry sends the message again.
    await failed.locator(".msg-retry").click()
    await expect(other.user_messages.last).to_have_attribute("data-state", "accepted")
    await expect(other.user_messages.last.locator(".msg-bubble")).to_have_text("Third question")
    await other.wait_reply(other.replies.last)
    await expect(other.page.locator(".msg-error")).to_have_count(0)


# --- sign-out -------------------------------------------------------------------


async def test_sign_out_clears_the_cookie_and_closes_the_socket(web: Web) -> None:
    chat = await web.tab()
    sockets = chat.sockets
    await chat.open()
    await chat.sign_in(f"Tester {uuid.uuid4().hex[:10]}")
    assert sockets and not sockets[-1].is_closed()

    def sign_out_call(response: Response) -> bool:
        return response.url.endswith("/auth/session") and response.request.method == "DELETE"

    async with chat.page.expect_response(sign_out_call) as signed_out:
        await chat.page.click("#signout")
    assert (await signed_out.value).status == 204
    await expect(chat.body).to_have_attribute("data-screen", "signin")
    await expect(chat.body).to_have_attribute("data-connection", "closed")
    for socket in sockets:
        if not socket.is_closed():
            await socket.wait_for_event("close")
    cookies = await chat.page.context.cookies()
    assert [c for c in cookies if c["name"] == "parley_session"] == []
    me = await chat.page.evaluate("fetch('/auth/me').then((r) => r.status)")
    assert me == 401
    assert await chat.page.evaluate("sessionStorage.getItem('parley.conversation')") is None


# --- small screens --------------------------------------------------------------


async def test_phone_width_chat_with_the_sidebar_behind_a_button(web: Web, fake: FakeLLM) -> None:
    fake.enqueue(Script(chunks=["Hold the power button ", "for ten seconds."], delay=0.02))
    chat = await web.signed_in("agent_gamma", viewport=PHONE, is_mobile=True, has_touch=True)
    page = chat.page
    sidebar = page.locator("#sidebar")
    toggle = page.locator("#sidebar-toggle")
    await expect(sidebar).to_be_hidden()
    await expect(toggle).to_be_visible()

    await chat.input.fill("My phone is frozen")
    await page.locator("#send-button").tap()
    reply = await chat.wait_reply(chat.replies.first)
    await expect(reply.locator(".msg-body")).to_have_text("Hold the power button for ten seconds.")
    await expect(reply).to_be_in_viewport()
    await expect(chat.input).to_be_in_viewport()
    width = await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"horizontal overflow: {width}"

    await toggle.tap()
    await expect(chat.body).to_have_attribute("data-sidebar", "open")
    await expect(sidebar).to_be_visible()
    await expect(sidebar).to_be_in_viewport()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(page.locator("#new-chat")).to_be_focused()
    await expect(chat.conversations).to_have_count(1)
    assert await page.evaluate("document.getElementById('chat').inert") is True
    await page.keyboard.press("Escape")
    await expect(chat.body).to_have_attribute("data-sidebar", "closed")
    await expect(sidebar).to_be_hidden()
    await expect(toggle).to_be_focused()
    assert await page.evaluate("document.getElementById('chat').inert") is False


# --- screenshots for the README ----------------------------------------------------

SCREENSHOT_TURNS = [
    (
        "I have £5,000 saved. Should I pay off my credit card or start investing?",
        "The order matters more than the amount. A common sequence:\n\n"
        "1. **Keep an emergency fund** of three months of essential spending.\n"
        "2. **Clear high-interest debt**: a card at 24% APR costs more than most "
        "investments can be expected to return.\n"
        "3. **Then invest** for goals at least five years away, in a low-cost index fund.",
    ),
    (
        "It's £1,800 at 24% APR. How long would £150 a month take?",
        "About **14 months**, with roughly £260 of interest. To check it:\n\n"
        "```python\nbalance, months = 1800, 0\nwhile balance > 0:\n"
        "    balance = balance * 1.02 - 150\n    months += 1\n```",
    ),
]

SIDEBAR_CONVERSATIONS = [
    ("agent_gamma", "Wi-Fi drops every evening"),
    ("agent_beta", "Taglines for a neighbourhood bakery"),
    ("agent_alpha", "What is an index fund?"),
]


async def converse(chat: ChatPage, fake: FakeLLM) -> None:
    """The screenshots' conversation with Alpha (live, so its rule notices show)."""
    await chat.pick_agent("agent_alpha")
    for question, answer in SCREENSHOT_TURNS:
        fake.enqueue(Script(chunks=pieces(answer, 12), delay=0.005))
        await chat.wait_reply(await chat.send(question))
    await expect(chat.replies.last.locator("li.notice-chip")).not_to_have_count(0)
    await expect(chat.body).to_have_attribute("data-busy", "false")


async def test_a_realistic_conversation_renders_at_desktop_and_phone_width(
    web: Web, fake: FakeLLM, tmp_path: Path
) -> None:
    """Also the README's screenshots: ``PARLEY_SCREENSHOTS=1`` writes them to docs/."""
    refresh = os.environ.get("PARLEY_SCREENSHOTS") == "1"
    out = REPO / "docs" / "screenshots" if refresh else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    name = "Ada Lovelace"  # each test run has a database of its own
    chat = await web.signed_in(None, name=name)
    async with await web.observer(chat) as client:  # older conversations for the sidebar
        for agent, question in SIDEBAR_CONVERSATIONS:
            fake.enqueue(Script(chunks=["Sure, let's look at that together."]))
            await client.start(agent=agent)
            await client.ask(question)
    await chat.page.reload()
    await expect(chat.conversations).to_have_count(len(SIDEBAR_CONVERSATIONS))
    await converse(chat, fake)
    await expect(chat.conversations).to_have_count(len(SIDEBAR_CONVERSATIONS) + 1)
    await chat.page.mouse.move(0, 0)
    # From the top of the conversation: both questions, the list, the code and a notice.
    await chat.page.locator("#scroller").evaluate("(node) => { node.scrollTop = 0; }")
    await expect(chat.user_messages.first).to_be_in_viewport()
    await chat.page.screenshot(path=str(out / "desktop.png"))

    phone = await web.tab(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    await phone.open()
    await phone.sign_in(name)
    await converse(phone, fake)
    await phone.page.screenshot(path=str(out / "phone.png"))
    for name in ("desktop.png", "phone.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")

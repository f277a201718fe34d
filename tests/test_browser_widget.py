"""The embeddable widget in headless Chromium: a customer's site on another origin.

Each host page is served by a tiny server of its own on another local port
(tests/support/guests.py ``host_site``), under a strict CSP that allows only
Parley's origin for scripts and frames, and embeds the widget with one script
tag. The allowed site is listed in its agent's ``guests.sites``; the other is
not. The pages are reached as ``localhost`` and Parley as ``127.0.0.1``, so
the widget is another site's frame, as on the web. Tests wait on the state the
widget mirrors into the DOM (``body[data-state]``, ``article.w-msg[data-status]``),
never on sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, FrameLocator, Page, expect

from parley.examples.background import BackgroundServer
from support.browser import TIMEOUT_MS, PageWatch, watch_context
from support.fake_llm import FakeLLM, Script
from support.guests import GUEST_AGENT, GUEST_TOOLS_AGENT, host_site, write_guest_catalog
from support.server import ParleyServer

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"


class Sites:
    def __init__(self, parley: ParleyServer, allowed: BackgroundServer, other: BackgroundServer):
        self.parley = parley
        self.allowed = f"http://localhost:{allowed.port}"
        self.other = f"http://localhost:{other.port}"


@pytest.fixture(scope="module")
def sites(
    server_env: dict[str, str], catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sites]:
    catalog = tmp_path_factory.mktemp("widget") / "catalog"
    env = {**server_env, "PARLEY_CATALOG": str(catalog), "PARLEY_DEV_LOGIN": "true"}  # the demo
    parley = ParleyServer(env, name="parley-widget")
    allowed = BackgroundServer(host_site(parley.url)).start()
    other = BackgroundServer(host_site(parley.url, calls_api=True)).start()
    write_guest_catalog(catalog_dir, catalog, [f"http://localhost:{allowed.port}"])
    parley.start()
    yield Sites(parley, allowed, other)
    parley.stop()
    allowed.stop()
    other.stop()


@pytest.fixture
async def visitor(browser: Browser) -> AsyncIterator[tuple[Page, PageWatch]]:
    """A visitor's tab; after the test, no CSP violation and no script error anywhere."""
    context: BrowserContext = await browser.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    watch = await watch_context(context)
    page = await context.new_page()
    watch.attach(page)
    yield page, watch
    await context.close()


def widget(page: Page) -> FrameLocator:
    return page.frame_locator("[data-parley-widget] iframe.parley-frame")


async def open_widget(page: Page, url: str) -> FrameLocator:
    await page.goto(url)
    launcher = page.locator("[data-parley-widget] button.parley-launcher")
    await launcher.click()
    await expect(page.locator("[data-parley-widget]")).to_have_attribute("data-state", "open")
    return widget(page)


async def test_a_site_embeds_the_widget_and_chats_and_a_reload_resumes(
    sites: Sites, visitor: tuple[Page, PageWatch], fake: FakeLLM
) -> None:
    page, watch = visitor
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    chat = await open_widget(page, f"{sites.allowed}/?agent={GUEST_AGENT}")
    await expect(chat.locator("body")).to_have_attribute("data-state", "ready")

    fake.enqueue(
        Script(chunks=["Try ", "**turning** ", "it off ", "and on. ", HOSTILE], delay=0.05)
    )
    await chat.locator("#w-input").fill("My router blinks")
    await chat.locator("#w-input").press("Enter")
    reply = chat.locator("article.w-reply").last
    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(reply.locator(".w-body")).to_contain_text("Try turning it off and on.")
    assert await reply.locator(".w-body strong").inner_text() == "turning"  # Markdown
    await expect(reply.locator(".w-body")).to_contain_text(HOSTILE)  # shown as text
    assert await reply.locator(".w-body img").count() == 0
    assert int(await reply.get_attribute("data-seq") or 0) == 5  # streamed: one per delta
    await expect(chat.locator("article.w-user")).to_have_attribute("data-status", "accepted")
    conversation = await chat.locator("body").get_attribute("data-conversation-id")
    assert conversation

    # The guest token reached the socket as a subprotocol, never in its URL.
    assert sockets == [sites.parley.ws_url]
    await page.reload()
    chat = widget(page)  # the widget re-opens as it was
    await expect(chat.locator("body")).to_have_attribute("data-state", "ready")
    await expect(chat.locator("body")).to_have_attribute("data-conversation-id", conversation)
    await expect(chat.locator("article.w-user")).to_have_text(["My router blinks"])
    await expect(chat.locator("article.w-reply .w-body")).to_contain_text(
        ["Try turning it off and on."]
    )

    fake.enqueue(Script(chunks=["Glad ", "to help."]))
    await chat.locator("#w-input").fill("It works now")
    await chat.locator("#w-input").press("Enter")
    await expect(chat.locator("article.w-reply").last).to_have_attribute("data-status", "complete")
    await expect(chat.locator("article.w-reply")).to_have_count(2)
    sent = fake.requests[-1].body["messages"]  # the conversation went on, history and all
    assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "user"]

    assert watch.csp_violations == []
    assert watch.page_errors == []
    assert watch.csp_console_errors == []


async def test_a_guest_approves_a_tool_step_in_the_widget(
    sites: Sites, visitor: tuple[Page, PageWatch], fake: FakeLLM
) -> None:
    page, watch = visitor
    chat = await open_widget(page, f"{sites.allowed}/?agent={GUEST_TOOLS_AGENT}")
    await expect(chat.locator("body")).to_have_attribute("data-state", "ready")
    arguments = '{"subject": "Router", "description": "It blinks all day long."}'
    fake.enqueue(
        Script(tool_calls=[("create_ticket", arguments)]), Script(chunks=["Ticket ", "opened."])
    )
    await chat.locator("#w-input").fill("Open a ticket please")
    await chat.locator("#w-input").press("Enter")
    step = chat.locator(".w-tool")
    await expect(step).to_have_attribute("data-status", "awaiting_confirmation")
    await expect(step.locator(".w-tool-args")).to_contain_text("It blinks all day long.")
    await step.locator("button.w-approve").click()
    reply = chat.locator("article.w-reply").last
    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(step).to_have_attribute("data-status", "ok")
    await expect(reply.locator(".w-body")).to_have_text("Ticket opened.")
    assert watch.csp_violations == [] and watch.page_errors == []


async def test_a_site_that_is_not_allowed_cannot_embed_the_widget(
    sites: Sites, visitor: tuple[Page, PageWatch]
) -> None:
    page, watch = visitor
    async with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
        await open_widget(page, f"{sites.other}/?agent={GUEST_AGENT}")
    # The browser refused the frame: the visitor sees no chat in it.
    frame = await page.locator("[data-parley-widget] iframe.parley-frame").element_handle()
    assert frame is not None
    content = await frame.content_frame()
    assert content is not None
    await content.wait_for_load_state()
    assert await content.locator("#w-input").count() == 0
    assert not content.url.startswith(sites.parley.url)

    # Nor can the site's own scripts get a guest token: no CORS for it, and a 403.
    blocked = await page.evaluate(
        """async (url) => {
            try {
                await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: JSON.stringify({agent: 'agent_guest'})});
                return 'answered';
            } catch (error) {
                return 'blocked';
            }
        }""",
        f"{sites.parley.url}/v1/guest",
    )
    assert blocked == "blocked"
    async with httpx.AsyncClient() as client:
        refused = await client.post(
            f"{sites.parley.url}/v1/guest",
            json={"agent": GUEST_AGENT},
            headers={"Origin": sites.other},
        )
    assert refused.status_code == 403
    assert watch.page_errors == []


async def test_the_demo_page_shows_the_widget_on_parleys_own_origin(
    sites: Sites, visitor: tuple[Page, PageWatch], fake: FakeLLM
) -> None:
    page, watch = visitor
    chat = await open_widget(page, f"{sites.parley.url}/widget/demo?agent={GUEST_AGENT}")
    await expect(chat.locator("body")).to_have_attribute("data-state", "ready")
    fake.enqueue(Script(chunks=["Hello ", "from ", "the demo."]))
    await chat.locator("#w-input").fill("Hi")
    await chat.locator("#w-input").press("Enter")
    reply = chat.locator("article.w-reply").last
    await expect(reply).to_have_attribute("data-status", "complete")
    await expect(reply.locator(".w-body")).to_have_text("Hello from the demo.")
    assert watch.csp_violations == [] and watch.page_errors == []

"""Cited replies in the chat UI, in headless Chromium against a real server: the
sources list under a reply, ``[n]`` linked to the source viewer, both kept on reload.

Uses conftest.py's browser and tests/test_browser.py's dev-sign-in server and
:class:`Web` helper; the agent is ``agent_kb`` (tests/support/knowledge.py). Waits on
DOM state, never sleeps.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from support.fake_llm import FakeLLM, Script
from test_browser import Web, web, web_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

REPLY = "Hold the reset pin for ten seconds [1]. Not a source: [7]. Code: `[1]`"


async def test_sources_are_listed_and_citations_link_to_them(web: Web, fake: FakeLLM) -> None:  # noqa: F811
    fake.enqueue(Script(chunks=["Hold the reset pin ", "for ten seconds [1]. ", REPLY[40:]]))
    chat = await web.signed_in("agent_kb")
    reply = await chat.send("How do I restore my router's factory settings?")
    await chat.wait_reply(reply, "complete")

    sources = reply.locator(".msg-sources li")
    first = sources.first.locator("a")
    await expect(first).to_have_text("Acme router manual \u203a Resetting the router")
    href = await first.get_attribute("href")
    assert href is not None and href.startswith("/v1/conversations/")
    await expect(first).to_have_attribute("target", "_blank")
    await expect(first).to_have_attribute("rel", "noopener noreferrer")
    await expect(sources.first.locator(".source-snippet")).to_contain_text("reset pin")

    body = reply.locator(".msg-body")
    citation = body.locator("a.citation")
    await expect(citation).to_have_count(1)  # [7] has no source; code stays code
    await expect(citation).to_have_text("[1]")
    await expect(citation).to_have_attribute("href", href)
    await expect(body.locator("code")).to_have_text("[1]")

    # The link opens the source as plain text, for this user.
    viewer = await chat.page.context.request.get(href)
    assert viewer.status == 200
    assert viewer.headers["content-type"].startswith("text/plain")
    assert "recessed reset pin" in await viewer.text()

    # After a reload the stored reply shows the same sources and links.
    await chat.page.reload()
    again = chat.page.locator("article.msg-assistant").last
    await expect(again.locator(".msg-sources li a").first).to_have_attribute("href", href)
    await expect(again.locator(".msg-body a.citation")).to_have_attribute("href", href)

"""First-run polish of the chat UI (issue 12), in headless Chromium against a real server.

A reply that ends without text, Retry of a failed reply, what the server stored
of a redacted message, the agent's own message limit, plain-text titles, plain
words on chips and errors, a quiet console when signed out, and an image-link
icon that needs no emoji font. Uses conftest.py's browser and tests/test_browser.py's
dev-sign-in server and :class:`Web` helper; waits on DOM state, never sleeps.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import expect

from support.browser import session_token
from support.fake_llm import FakeLLM, Script
from test_browser import Web, web, web_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

PROVIDER_DOWN = "The model provider is unavailable right now. Try again in a moment."


async def test_a_failed_reply_loses_its_dots_says_why_once_and_offers_retry(
    web: Web,  # noqa: F811
    fake: FakeLLM,
) -> None:
    fake.enqueue(*[Script(status=500) for _ in range(6)])  # more than every retry
    chat = await web.signed_in("agent_gamma")
    failed = await chat.wait_reply(await chat.send("Are you there?"), "failed")
    await expect(failed.locator(".typing")).to_have_count(0)
    await expect(failed.locator(".msg-body")).to_have_text("")
    # One clear sentence, not the UI's and the server's wording of the same thing.
    await expect(failed.locator(".msg-status")).to_have_text(PROVIDER_DOWN)
    await expect(chat.page.locator("#banner")).to_be_hidden()
    retry = failed.locator(".reply-retry")
    await expect(retry).to_be_visible()

    fake.reset()  # the failures left over, if fewer were asked for
    fake.enqueue(Script(chunks=["Yes, ", "I'm here now."]))
    await retry.click()
    again = await chat.wait_reply(chat.replies.nth(1))
    await expect(again.locator(".msg-body")).to_have_text("Yes, I'm here now.")
    await expect(chat.user_messages.locator(".msg-bubble")).to_have_text(
        ["Are you there?", "Are you there?"]
    )
    await expect(retry).to_be_hidden()  # only the latest reply offers it
    await expect(again.locator(".reply-retry")).to_be_hidden()


async def test_stop_before_the_first_token_leaves_no_typing_dots(
    web: Web,  # noqa: F811
    fake: FakeLLM,
) -> None:
    fake.enqueue(Script(chunks=[], hold=True))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.send("Think about it")
    await expect(reply.locator(".typing")).to_have_count(1)
    await asyncio.to_thread(fake.wait_for_held, 1)
    await chat.page.click("#stop-button")
    await chat.wait_reply(reply, "cancelled")
    await expect(reply.locator(".typing")).to_have_count(0)
    await expect(reply.locator(".msg-status")).to_have_text("Stopped")
    await expect(chat.body).to_have_attribute("data-busy", "false")


CARD_AND_MAIL = "My card is 4111 1111 1111 1111 and my e-mail is ada@example.com, help!"


async def test_the_user_sees_their_message_as_stored_with_the_redacted_chip_under_it(
    web: Web,  # noqa: F811
    fake: FakeLLM,
) -> None:
    fake.enqueue(Script(chunks=["I can help with that."]))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.wait_reply(await chat.send(CARD_AND_MAIL))
    messages = await web.stored_messages(chat, await chat.conversation_id())
    stored = messages[0]["content"]
    assert "4111" not in stored and "ada@example.com" not in stored

    async def shows_what_was_stored() -> None:
        mine = chat.user_messages.first
        await expect(mine.locator(".msg-bubble")).to_have_text(stored)
        await expect(mine).to_have_attribute("data-redacted", "true")
        chip = mine.locator("li.notice-chip[data-action='redacted']")
        await expect(chip).to_be_visible()
        await expect(chip.locator(".notice-label")).to_have_text("Redacted")
        # Said once, under the message it is about: not again under the reply.
        await expect(
            chat.replies.first.locator("li.notice-chip[data-action='redacted']")
        ).to_have_count(0)

    await shows_what_was_stored()  # at once, from the `accepted` frame
    assert "4111" not in (await chat.page.locator("#messages").text_content() or "")
    # Nor in the title taken from the message, in the header and the sidebar.
    title = chat.page.locator("#chat-title")
    await expect(title).to_contain_text("My card is [redacted card number]")
    await expect(title).not_to_contain_text("4111")
    await expect(chat.conversations.locator(".conv-title")).not_to_contain_text("4111")
    await expect(reply).to_have_attribute("data-status", "complete")
    await chat.page.reload()
    await expect(chat.body).to_have_attribute("data-session", "ready")
    await shows_what_was_stored()  # and from the history after a reload


async def test_a_message_over_the_agents_limit_stays_in_the_box_with_the_reason(
    web: Web,  # noqa: F811
    fake: FakeLLM,
) -> None:
    # Alpha's rules take 8,000 characters; the server's own limit is higher.
    chat = await web.signed_in("agent_alpha")
    too_long = "money " * 1500  # 9,000 characters
    await chat.input.fill(too_long.strip())
    await chat.input.press("Enter")
    reason = chat.page.locator("#composer-error")
    await expect(reason).to_be_visible()
    await expect(reason).to_contain_text(re.compile(r"8,?000"))
    await expect(chat.input).to_have_value(too_long.strip())
    await expect(chat.user_messages).to_have_count(0)  # no red bubble whose Retry can only fail
    await expect(chat.body).to_have_attribute("data-busy", "false")

    # With the conversation under way, the counter counts against the agent's limit.
    fake.enqueue(Script(chunks=["Happy to help."]))
    await chat.input.fill("What is an index fund?")
    await expect(reason).to_be_hidden()
    await chat.wait_reply(await chat.send("What is an index fund?"))
    await chat.input.fill("x" * 9000)
    counter = chat.page.locator("#composer-count")
    await expect(counter).to_have_text("9,000 / 8,000")
    await expect(counter).to_have_attribute("data-over", "true")
    await expect(reason).to_contain_text("accepts messages of up to 8,000 characters")
    await expect(chat.page.locator("#send-button")).to_be_disabled()
    await chat.input.press("Enter")
    await expect(chat.user_messages).to_have_count(1)
    await expect(chat.input).to_have_value("x" * 9000)


async def test_titles_are_plain_text(web: Web, fake: FakeLLM) -> None:  # noqa: F811
    chat = await web.signed_in("agent_gamma")
    await chat.wait_reply(await chat.send("## **Wi-Fi** drops every `evening`"))
    conversation_id = await chat.conversation_id()
    listed = chat.page.locator(f'li.conv-item[data-conversation-id="{conversation_id}"]')
    # The provisional title, taken from the message, is plain text already.
    await expect(listed.locator(".conv-title")).to_have_text("Wi-Fi drops every evening")

    # A title with Markdown in it (a model's, or a rename) is shown without it.
    token = await session_token(chat.page.context)
    async with httpx.AsyncClient(base_url=web.server.url, timeout=10) as client:
        response = await client.patch(
            f"/v1/conversations/{conversation_id}",
            json={"title": "**Router** keeps _dropping_ [Wi-Fi](https://example.com)"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    await chat.page.reload()
    plain = "Router keeps dropping Wi-Fi"
    await expect(listed.locator(".conv-title")).to_have_text(plain)
    await expect(chat.page.locator("#chat-title")).to_have_text(plain)
    assert await chat.page.title() == f"{plain} · Parley"


async def test_sign_out_stays_on_one_line_at_1280(web: Web) -> None:  # noqa: F811
    chat = await web.signed_in(None, name="Bartholomew Fitzwilliam-Montgomery the Third")
    lines = await chat.page.locator("#signout").evaluate(
        """(button) => {
            const range = document.createRange();
            range.selectNodeContents(button);
            return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
        }"""
    )
    assert lines == 1
    box = await chat.page.locator("#signout").bounding_box()
    sidebar = await chat.page.locator("#sidebar").bounding_box()
    assert box and sidebar and box["x"] + box["width"] <= sidebar["x"] + sidebar["width"]


async def test_a_blocked_reply_is_explained_in_plain_words(web: Web, fake: FakeLLM) -> None:  # noqa: F811
    chat = await web.signed_in("agent_gamma")
    asked = await chat.send("Where can I get a keygen for Photoshop?")
    reply = await chat.wait_reply(asked, "blocked")
    chip = reply.locator("li.notice-chip[data-action='blocked']")
    await expect(chip).to_be_visible()
    said = f"{await chip.text_content()} {await chip.get_attribute('title')}"
    for jargon in ("ended the turn", "software_piracy", "rule"):
        assert jargon not in said, said
    await expect(chip.locator(".notice-label")).to_have_text("Standard answer")
    await expect(chip.locator(".notice-detail")).to_have_text(
        "The assistant doesn't help with this topic."
    )
    await expect(reply.locator(".msg-status")).to_be_empty()  # said once, by the chip
    assert fake.requests == []  # the rule answered, no model


async def test_no_console_errors_signed_out_or_in(web: Web, fake: FakeLLM) -> None:  # noqa: F811
    chat = await web.tab()
    await chat.open()
    await expect(chat.body).to_have_attribute("data-screen", "signin")
    await chat.sign_in("Quiet Console")
    await chat.page.reload()
    await expect(chat.body).to_have_attribute("data-connection", "open")
    assert web.watch(chat.page.context).console_errors == []


async def test_a_remote_image_is_a_link_with_an_icon_that_needs_no_emoji_font(
    web: Web,  # noqa: F811
    fake: FakeLLM,
) -> None:
    fake.enqueue(Script(chunks=["See ![the wiring diagram](https://example.com/d.png) first."]))
    chat = await web.signed_in("agent_gamma")
    reply = await chat.wait_reply(await chat.send("Show me the diagram"))
    link = reply.locator(".msg-body a.image-link")
    await expect(link).to_have_text("the wiring diagram")
    await expect(link).to_have_attribute("href", "https://example.com/d.png")
    assert "\U0001f5bc" not in (await reply.locator(".msg-body").text_content() or "")
    icon = await link.evaluate(
        """(node) => {
            const style = getComputedStyle(node, '::before');
            return { mask: style.maskImage || style.webkitMaskImage, width: style.width };
        }"""
    )
    assert icon["mask"].startswith('url("data:image/svg+xml') and icon["width"] != "0px", icon

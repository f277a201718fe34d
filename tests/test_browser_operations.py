"""Operating Parley in headless Chromium: a user and an operator in two browser
contexts (takeover end to end, a reload on each side), feedback and renaming.

Both sign in by pasting a token (the ``server`` fixture has no dev sign-in);
the operator's is an admin token. Tests wait on the state the pages mirror
into the DOM (docs/ui.md), never on sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from conftest import TokenFactory
from support.browser import (
    TIMEOUT_MS,
    ChatPage,
    WatchedContexts,
)
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)> **not bold**"


class People(WatchedContexts):
    """Browser contexts of one test (a user, an operator), checked when the test ends."""

    def __init__(self, browser: Browser, server: ParleyServer) -> None:
        super().__init__(browser, server.url, TIMEOUT_MS)

    async def user(self, token: str) -> ChatPage:
        chat = ChatPage(await self.page())
        await chat.open()
        await chat.sign_in_with_token(token)
        await chat.pick_agent("agent_gamma")
        return chat

    async def operator(self, token: str) -> Page:
        chat = ChatPage(await self.page())
        await chat.open()
        await chat.sign_in_with_token(token)
        await expect(chat.page.locator("#console-link")).to_be_visible()
        await chat.page.click("#console-link")
        await console_ready(chat.page)
        return chat.page


@pytest.fixture
async def people(browser: Browser, server: ParleyServer, fake: FakeLLM) -> AsyncIterator[People]:
    session = People(browser, server)
    yield session
    await session.close()


async def console_ready(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-screen", "console")
    await expect(page.locator("body")).to_have_attribute("data-events", "open")


async def test_a_person_takes_over_answers_and_hands_back(
    people: People, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Hello! ", "How can I help?"]), Script(chunks=["Welcome back."]))
    _, user_token = make_token(name="Robin")
    _, operator_token = make_token(f"op-{uuid.uuid4().hex[:8]}", admin=True, name="Dana")
    user = await people.user(user_token)
    await user.wait_reply(await user.send("Hello"))
    conversation_id = await user.conversation_id()
    status = user.page.locator("#handoff-status")

    console = await people.operator(operator_token)
    entry = console.locator(f'#queue li.queue-item[data-conversation-id="{conversation_id}"]')
    await expect(entry).to_have_count(0)

    # The user asks for a person; the queue shows it live.
    await user.page.click("#handoff-button")
    await expect(status).to_have_attribute("data-state", "waiting")
    await expect(user.page.locator("#handoff-button")).to_be_disabled()
    await expect(entry).to_have_attribute("data-state", "waiting")
    await expect(entry.locator(".queue-reason")).to_have_text("The user asked for a person")

    # The operator takes over; the user sees who joined.
    await entry.locator(".queue-open").click()
    detail = console.locator("#detail")
    await expect(detail).to_have_attribute("data-conversation-id", conversation_id)
    await console.click("#take-over")
    await expect(detail).to_have_attribute("data-taken-by-me", "true")
    await expect(status).to_have_attribute("data-state", "taken")
    await expect(user.page.locator("#handoff-text")).to_contain_text("Dana has joined")

    # The user's messages reach the operator, and no model replies.
    await user.input.fill(HOSTILE)
    await user.input.press("Enter")
    await expect(user.user_messages.last).to_have_attribute("data-state", "accepted")
    await expect(user.body).to_have_attribute("data-busy", "false")
    said = console.locator('#transcript article.console-msg[data-role="user"]').last
    await expect(said.locator(".console-msg-body")).to_have_text(HOSTILE)
    await expect(said.locator("img")).to_have_count(0)

    # The operator's reply reaches the user, authored by them.
    await console.fill("#operator-input", "Hi Robin, Dana here.")
    await console.click("#operator-send")
    from_dana = user.page.locator('article.msg-assistant[data-author-kind="operator"]')
    await expect(from_dana).to_have_count(1)
    await expect(from_dana).to_have_attribute("data-status", "complete")
    await expect(from_dana.locator(".msg-body")).to_have_text("Hi Robin, Dana here.")
    await expect(from_dana.locator(".msg-author")).to_contain_text("Dana")
    await expect(from_dana.locator(".msg-usage")).to_be_hidden()

    # A reload on each side: both pick up where they were.
    await user.page.reload()
    await expect(user.body).to_have_attribute("data-session", "ready")
    await expect(status).to_have_attribute("data-state", "taken")
    await expect(from_dana.locator(".msg-body")).to_have_text("Hi Robin, Dana here.")
    await expect(user.user_messages.last.locator(".msg-bubble")).to_have_text(HOSTILE)
    await console.reload()
    await console_ready(console)
    await expect(detail).to_have_attribute("data-taken-by-me", "true")
    await expect(console.locator("#transcript article.console-msg")).to_have_count(4)

    await console.fill("#operator-input", "Anything else?")
    await console.press("#operator-input", "Enter")
    await expect(from_dana).to_have_count(2)
    await expect(from_dana.last.locator(".msg-body")).to_have_text("Anything else?")
    assert len(fake.requests) == 1

    # Handing back: the agent answers the next message.
    await console.click("#release")
    await expect(detail).to_have_attribute("data-state", "none")
    await expect(status).to_have_attribute("data-state", "released")
    await expect(user.page.locator("#handoff-text")).to_contain_text("handed the conversation back")
    reply = await user.wait_reply(await user.send("Thanks!"))
    await expect(reply.locator(".msg-body")).to_have_text("Welcome back.")
    await expect(reply).not_to_have_attribute("data-author-kind", "operator")
    assert len(fake.requests) == 2
    await expect(entry).to_have_count(0)


async def test_feedback_and_renaming_survive_a_reload(
    people: People, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(Script(chunks=["Restart ", "the router."]))
    user = await people.user(make_token()[1])
    reply = await user.wait_reply(await user.send("My wifi drops"))
    conversation_id = await user.conversation_id()

    await reply.locator(".feedback-down").click()
    await expect(reply).to_have_attribute("data-feedback", "down")
    await expect(reply.locator(".feedback-down")).to_have_attribute("aria-pressed", "true")
    comment = reply.locator(".feedback-comment")
    await expect(comment).to_be_focused()
    await comment.fill("Too short <b>really</b>")
    await comment.press("Enter")
    saved = reply.locator(".feedback-saved")
    await expect(saved).to_have_text("Your comment: Too short <b>really</b>")

    item = user.page.locator(
        f'#conversation-list li.conv-item[data-conversation-id="{conversation_id}"]'
    )
    await item.hover()
    await item.locator(".conv-rename").click()
    field = item.locator("input.conv-rename-input")
    await expect(field).to_be_focused()
    await field.fill("**Wifi** <i>saga</i>")
    await field.press("Enter")
    # Shown as plain text: Markdown dropped, HTML as the characters typed.
    await expect(item.locator(".conv-title")).to_have_text("Wifi <i>saga</i>")
    await expect(user.page.locator("#chat-title")).to_have_text("Wifi <i>saga</i>")

    await user.page.reload()
    await expect(user.body).to_have_attribute("data-session", "ready")
    reply = user.replies.first
    await expect(reply).to_have_attribute("data-feedback", "down")
    await expect(reply.locator(".feedback-saved")).to_have_text(
        "Your comment: Too short <b>really</b>"
    )
    await expect(item.locator(".conv-title")).to_have_text("Wifi <i>saga</i>")
    await expect(item.locator(".conv-title i, .conv-title strong")).to_have_count(0)
    await expect(reply.locator(".feedback-saved b")).to_have_count(0)

    await reply.locator(".feedback-up").click()  # a change of mind replaces the rating
    await expect(reply).to_have_attribute("data-feedback", "up")
    await expect(reply.locator(".feedback-saved")).to_be_hidden()

"""Tool steps in the chat UI, in headless Chromium against the real ``server``.

The agent is ``agent_tools`` (fake OpenAI model, the example order service's
``create_ticket``, which asks the user first). A tab signs in by pasting an
access token (the ``server`` fixture has no dev sign-in), picks the agent and
talks; tests wait on the state the UI mirrors into the DOM
(``details.tool-step[data-status]``, ``article.msg-assistant[data-status][data-seq]``
...; docs/ui.md), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    Locator,
    expect,
)

from conftest import TokenFactory
from parley.examples.background import BackgroundServer
from support.browser import (
    NON_EMPTY,
    TIMEOUT_MS,
    ChatPage,
    FrameGate,
    WatchedContexts,
)
from support.client import ChatClient
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer
from support.tickets import ticket_call, tickets

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"


class Tabs(WatchedContexts):
    """Tabs of one test, each signed in as the test's user; checked when the test ends."""

    def __init__(self, browser: Browser, server: ParleyServer, token: str) -> None:
        super().__init__(browser, server.url, TIMEOUT_MS)
        self.server = server
        self.token = token

    async def signed_in(self, *, gate: FrameGate | None = None) -> ChatPage:
        """A new tab, signed in, with the tool agent picked (``gate`` routes its socket)."""
        page = await self.page()
        if gate is not None:
            await gate.install(page)
        chat = ChatPage(page)
        await chat.open()
        await chat.sign_in_with_token(self.token)
        await chat.pick_agent("agent_tools")
        return chat

    async def stored_reply(self, conversation_id: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=10) as client:
            response = await client.get(
                f"/v1/conversations/{conversation_id}",
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert response.status_code == 200, response.text
        [reply] = [m for m in response.json()["messages"] if m["role"] == "assistant"]
        return dict(reply)

    async def observer(self) -> ChatClient:
        """A WebSocket client of the same user, straight to the server (another device)."""
        return await ChatClient.connect(self.server.ws_url, self.token)


@pytest.fixture
async def tabs(
    browser: Browser, server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> AsyncIterator[Tabs]:
    session = Tabs(browser, server, make_token()[1])
    yield session
    await session.close()


async def reply_id_of(reply: Locator) -> str:
    await expect(reply).to_have_attribute("data-reply-id", NON_EMPTY)
    return str(await reply.get_attribute("data-reply-id"))


async def expect_asking(reply: Locator, subject: str) -> Locator:
    """The reply's one step waits for the user: open, its arguments shown, both buttons."""
    step = reply.locator("details.tool-step")
    await expect(step).to_have_count(1)
    await expect(step).to_have_attribute("data-status", "awaiting_confirmation")
    await expect(step).to_have_attribute("data-tool", "create_ticket")
    await expect(step).to_have_attribute("open", "")
    await expect(step.locator(".tool-name")).to_have_text("create_ticket")
    await expect(step.locator(".tool-status")).to_have_text("Waiting for your approval")
    await expect(step.locator(".tool-args")).to_contain_text(f'"subject": "{subject}"')
    await expect(step.locator(".tool-question")).to_have_text(
        "Allow create_ticket to run with these arguments?"
    )
    for button in (step.locator("button.tool-approve"), step.locator("button.tool-decline")):
        await expect(button).to_be_visible()
        await expect(button).to_be_enabled()
    return step


# --- approve / decline ------------------------------------------------------------


async def test_approve_runs_the_tool_once_and_the_reply_streams(
    tabs: Tabs, fake: FakeLLM, orders_service: BackgroundServer
) -> None:
    subject = f"Printer on fire {uuid.uuid4().hex[:6]}"
    fake.enqueue(
        ticket_call(subject),
        Script(chunks=["Ticket ", "opened: "], hold=True, after_release=["we will ", "call you."]),
    )
    chat = await tabs.signed_in()
    reply = await chat.send("Please open a ticket")
    step = await expect_asking(reply, subject)

    # Waiting for the user, not writing: no typing dots, the step's seq is in the DOM.
    await expect(reply).to_have_attribute("data-status", "streaming")
    await expect(reply).to_have_attribute("data-seq", "1")
    await expect(reply.locator(".typing")).to_have_count(0)
    await expect(chat.body).to_have_attribute("data-busy", "true")
    assert tickets(orders_service, subject) == []  # nothing runs before approval

    await step.locator("button.tool-approve").click()
    await expect(step).to_have_attribute("data-status", "ok")
    await expect(step.locator(".tool-status")).to_have_text("Done")
    await expect(step.locator(".tool-summary")).to_have_text("create_ticket: HTTP 201")
    await expect(step.locator(".tool-confirm")).to_be_hidden()
    await expect(step).not_to_have_attribute("open", "")  # answered: collapsed again
    # The reply's text streams after the step (the fake holds the rest back).
    await expect(reply.locator(".msg-body")).to_have_text("Ticket opened:")
    await expect(reply).to_have_attribute("data-status", "streaming")
    assert await chat.seq(reply) >= 4
    await asyncio.to_thread(fake.wait_for_held, 1)
    fake.release()
    await chat.wait_reply(reply, "complete")
    await expect(reply.locator(".msg-body")).to_have_text("Ticket opened: we will call you.")
    await expect(chat.body).to_have_attribute("data-busy", "false")
    # One numbering for the steps and the text; the page shows up to the last one.
    async with await tabs.observer() as observer:
        reply_id = await reply_id_of(reply)
        await observer.send({"type": "resume", "reply_id": reply_id, "after_seq": 0})
        replay = await observer.reply(reply_id)
    assert [(f["type"], f["status"]) for f in replay.tool_frames] == [
        ("tool_call", "awaiting_confirmation"),
        ("tool_call", "running"),
        ("tool_result", "ok"),
    ]
    assert replay.seqs == list(range(1, len(replay.seqs) + 1))
    assert await chat.seq(reply) == len(replay.seqs)

    assert len(tickets(orders_service, subject)) == 1
    stored = await tabs.stored_reply(await chat.conversation_id())
    [call] = stored["tool_calls"]
    assert (call["tool"], call["status"], call["arguments"]["subject"]) == (
        "create_ticket",
        "ok",
        subject,
    )


async def test_decline_never_runs_the_tool(
    tabs: Tabs, fake: FakeLLM, orders_service: BackgroundServer
) -> None:
    subject = f"Declined {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject), Script(chunks=["Okay, ", "no ticket then."]))
    chat = await tabs.signed_in()
    reply = await chat.send("Open a ticket?")
    step = await expect_asking(reply, subject)

    await step.locator("button.tool-decline").click()
    await expect(step).to_have_attribute("data-status", "declined")
    await expect(step.locator(".tool-status")).to_have_text("Declined")
    await expect(step.locator(".tool-confirm")).to_be_hidden()
    await chat.wait_reply(reply, "complete")
    await expect(reply.locator(".msg-body")).to_have_text("Okay, no ticket then.")
    await expect(step.locator(".tool-summary")).to_contain_text("declined")

    assert tickets(orders_service, subject) == []
    stored = await tabs.stored_reply(await chat.conversation_id())
    assert [c["status"] for c in stored["tool_calls"]] == ["declined"]


# --- reload and resume ------------------------------------------------------------


async def test_a_waiting_step_survives_reloads(
    tabs: Tabs, fake: FakeLLM, orders_service: BackgroundServer
) -> None:
    subject = f"Reloaded {uuid.uuid4().hex[:6]}"
    text = "Ticket opened after the reload."
    fake.enqueue(ticket_call(subject), Script(chunks=["Ticket opened ", "after the reload."]))
    chat = await tabs.signed_in()
    reply = await chat.send("Open a ticket, please")
    await expect_asking(reply, subject)
    reply_id = await reply_id_of(reply)
    conversation_id = await chat.conversation_id()

    # Reload mid-confirmation: active_reply is resumed from seq 0, the question is back.
    await chat.reload_in(conversation_id)
    live = chat.reply_of(reply_id)
    await expect(chat.replies).to_have_count(1)
    step = await expect_asking(live, subject)
    await expect(live).to_have_attribute("data-status", "streaming")
    await expect(live).to_have_attribute("data-seq", "1")
    await expect(chat.body).to_have_attribute("data-busy", "true")

    await step.locator("button.tool-approve").click()
    await expect(step).to_have_attribute("data-status", "ok")
    await chat.wait_reply(live, "complete")
    await expect(live.locator(".msg-body")).to_have_text(text)
    assert len(tickets(orders_service, subject)) == 1

    # Reload once it is done: the steps come from the stored history, collapsed.
    await chat.page.reload()
    await expect(chat.body).to_have_attribute("data-session", "ready")
    await expect(chat.replies).to_have_count(1)
    done = chat.replies.first
    await expect(done).to_have_attribute("data-status", "complete")
    await expect(done.locator(".msg-body")).to_have_text(text)
    shown = done.locator("details.tool-step")
    await expect(shown).to_have_count(1)
    await expect(shown).to_have_attribute("data-status", "ok")
    await expect(shown).to_have_attribute("data-tool", "create_ticket")
    await expect(shown).not_to_have_attribute("open", "")
    await expect(shown.locator(".tool-status")).to_have_text("Done")
    await expect(shown.locator(".tool-confirm")).to_be_hidden()
    await expect(shown.locator(".tool-summary")).to_have_text("create_ticket: HTTP 201")
    await expect(shown.locator(".tool-args")).to_be_hidden()  # collapsed
    await shown.locator("summary").click()  # the reader can open it
    await expect(shown.locator(".tool-args")).to_contain_text(subject)
    await expect(chat.body).to_have_attribute("data-busy", "false")
    assert len(tickets(orders_service, subject)) == 1


# --- answers in flight, late answers ------------------------------------------------


def is_reply_frame(frame: dict[str, Any]) -> bool:
    """A frame of the reply's stream (an error names its reply too, but is an answer)."""
    return "reply_id" in frame and frame.get("type") != "error"


async def test_a_late_answer_is_refused_and_the_step_catches_up(
    tabs: Tabs, fake: FakeLLM, orders_service: BackgroundServer
) -> None:
    subject = f"Answered elsewhere {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject), Script(chunks=["Done elsewhere."]))
    gate = FrameGate()
    chat = await tabs.signed_in(gate=gate)
    reply = await chat.send("Open a ticket")
    step = await expect_asking(reply, subject)
    reply_id = await reply_id_of(reply)

    # The tab falls behind: nothing from the server reaches it for now.
    gate.hold = lambda frame: True
    async with await tabs.observer() as other:  # another device approves first
        await other.send({"type": "resume", "reply_id": reply_id, "after_seq": 1})
        await other.confirm(reply_id, "r1c1", approve=True)
        finished = await other.reply(reply_id)
    assert finished.done is not None and finished.done["status"] == "complete"
    assert len(tickets(orders_service, subject)) == 1

    # The tab answers too. While its answer is in flight, neither button can be used again.
    await step.locator("button.tool-approve").click()
    sent = await asyncio.wait_for(
        gate.wait_sent(lambda frame: frame.get("type") == "confirm"), TIMEOUT_MS / 1000
    )
    assert sent == {"type": "confirm", "reply_id": reply_id, "call_id": "r1c1", "approve": True}
    await expect(step.locator("button.tool-approve")).to_be_disabled()
    await expect(step.locator("button.tool-decline")).to_be_disabled()

    # The server refuses the late answer (conflict): said in words, and the step
    # does not invite another answer.
    refusal = await asyncio.wait_for(
        gate.wait_held(lambda frame: frame["type"] == "error"), TIMEOUT_MS / 1000
    )
    assert (refusal["code"], refusal["call_id"]) == ("conflict", "r1c1")
    assert gate.release(lambda frame: not is_reply_frame(frame)) == 1
    await expect(chat.page.locator("#banner")).to_be_visible()
    await expect(chat.page.locator("#banner-text")).to_have_text(
        "That step was already answered, or it stopped waiting."
    )
    await expect(step.locator("button.tool-approve")).to_be_disabled()
    await expect(step.locator("button.tool-decline")).to_be_disabled()

    # The reply's own frames then tell what happened.
    gate.hold = lambda frame: False
    gate.release()
    await expect(step).to_have_attribute("data-status", "ok")
    await chat.wait_reply(reply, "complete")
    await expect(reply.locator(".msg-body")).to_have_text("Done elsewhere.")
    await expect(step.locator(".tool-confirm")).to_be_hidden()
    assert len(tickets(orders_service, subject)) == 1
    assert [f for f in gate.sent if f.get("type") == "confirm"] == [sent]  # sent once


async def test_a_dropped_answer_can_be_given_again_after_reconnecting(
    tabs: Tabs, fake: FakeLLM, orders_service: BackgroundServer
) -> None:
    subject = f"Dropped answer {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject), Script(chunks=["Opened after all."]))
    gate = FrameGate()
    chat = await tabs.signed_in(gate=gate)
    reply = await chat.send("Open a ticket")
    step = await expect_asking(reply, subject)

    # The answer never reaches the server: the connection drops with it.
    gate.drop_from_page = lambda frame: frame.get("type") == "confirm"
    await step.locator("button.tool-approve").click()
    await expect(step.locator("button.tool-approve")).to_be_disabled()
    gate.drop_from_page = lambda frame: False
    await gate.sever()
    await expect(chat.body).to_have_attribute("data-connection", "open")
    await expect(chat.body).to_have_attribute("data-session", "ready")

    # Still waiting on the server: the question can be answered again.
    await expect(step).to_have_attribute("data-status", "awaiting_confirmation")
    await expect(step.locator("button.tool-approve")).to_be_enabled()
    assert tickets(orders_service, subject) == []
    await step.locator("button.tool-approve").click()
    await expect(step).to_have_attribute("data-status", "ok")
    await chat.wait_reply(reply, "complete")
    assert len(tickets(orders_service, subject)) == 1


# --- untrusted arguments and summaries ----------------------------------------------


async def test_tool_arguments_names_and_summaries_render_as_text(
    tabs: Tabs, fake: FakeLLM, orders_service: BackgroundServer
) -> None:
    subject = f"Hostile {uuid.uuid4().hex[:6]}"
    fake.enqueue(
        # Round 1: a ticket whose description is markup, and a tool the agent does
        # not have, named like markup (refused; the name still reaches the page).
        Script(
            tool_calls=[
                (
                    "create_ticket",
                    json.dumps({"subject": subject, "description": f"It says {HOSTILE} now."}),
                ),
                (HOSTILE, "{}"),
            ]
        ),
        # Round 2: a handoff whose reason (shown in its summary and notice) is markup.
        Script(tool_calls=[("handoff_to_human", json.dumps({"reason": HOSTILE}))]),
        Script(chunks=["A colleague will take over."]),
    )
    chat = await tabs.signed_in()
    reply = await chat.send("Break things")
    tools = reply.locator(".msg-tools")
    asking = tools.locator('details.tool-step[data-tool="create_ticket"]')
    await expect(asking).to_have_attribute("data-status", "awaiting_confirmation")
    await expect(asking.locator(".tool-args")).to_contain_text(HOSTILE)
    refused = tools.locator("details.tool-step[data-status='refused']")
    await expect(refused.locator(".tool-name")).to_have_text(HOSTILE)
    await expect(reply.locator("img")).to_have_count(0)

    await asking.locator("button.tool-decline").click()
    handoff = tools.locator('details.tool-step[data-tool="handoff_to_human"]')
    await expect(handoff).to_have_attribute("data-status", "ok")
    await chat.wait_reply(reply, "complete")
    await expect(handoff.locator(".tool-summary")).to_have_text(
        f"Handed off to a person: {HOSTILE}"
    )
    await expect(handoff.locator(".tool-args")).to_contain_text(HOSTILE)
    await expect(reply.locator("li.notice-chip[data-action='handoff']")).to_contain_text(HOSTILE)
    await expect(tools.locator("details.tool-step")).to_have_count(3)

    async def inert() -> None:
        assert await reply.locator("img, script, svg, iframe").count() == 0
        handlers = await reply.evaluate(
            """(root) => [...root.querySelectorAll('*')].flatMap(
                   (n) => [...n.attributes].map((a) => a.name)).filter((a) => a.startsWith('on'))"""
        )
        assert handlers == []
        assert await chat.page.evaluate("document.images.length") == 0

    await inert()
    assert tickets(orders_service, subject) == []
    # The same from the stored history.
    await chat.page.reload()
    await expect(chat.body).to_have_attribute("data-session", "ready")
    reply = chat.replies.first
    tools = reply.locator(".msg-tools")
    await expect(tools.locator("details.tool-step")).to_have_count(3)
    await expect(tools.locator("details.tool-step[data-status='refused'] .tool-name")).to_have_text(
        HOSTILE
    )
    await inert()
    # tabs.close() fails the test if any dialog (alert) opened.

"""Tool calls inside replies, end to end: real Parley servers, the fake vendors' wires,
the example order service and a test tool service, over real WebSockets and HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx

from conftest import TokenFactory
from parley.examples.background import BackgroundServer
from support.client import ChatClient, Reply, ask_once, start_and_ask
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer
from support.tickets import awaiting, ticket_call, tickets
from support.tool_service import ToolService


def tool_message(request_body: dict[str, Any], role: str = "tool") -> list[dict[str, Any]]:
    return [m for m in request_body["messages"] if m["role"] == role]


async def tool_rows(db: asyncpg.Connection, reply_id: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT * FROM tool_calls WHERE reply_id = $1 ORDER BY id", uuid.UUID(reply_id)
    )


async def usage_count(db: asyncpg.Connection, reply_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM llm_usage u JOIN messages m ON m.id = u.message_id"
        " WHERE m.reply_id = $1",
        uuid.UUID(reply_id),
    )
    return count


async def test_one_call_runs_and_its_result_reaches_the_model(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(
        Script(chunks=["Let me check."], tool_calls=[("lookup_order", '{"order_id": "1042"}')]),
        Script(chunks=["Order 1042", " has shipped."]),
    )
    token = make_token()[1]
    session, reply = await start_and_ask(
        server.ws_url, token, "agent_tools", "Where is order 1042?"
    )
    assert [(f["type"], f["status"]) for f in reply.tool_frames] == [
        ("tool_call", "running"),
        ("tool_result", "ok"),
    ]
    call, result = reply.tool_frames
    assert call["tool"] == "lookup_order" and call["arguments"] == {"order_id": "1042"}
    assert call["call_id"] == result["call_id"] == "r1c1"
    assert reply.seqs == list(range(1, len(reply.seqs) + 1))  # one numbering, no gaps
    assert reply.text == "Let me check.\n\nOrder 1042 has shipped."
    assert reply.done is not None and reply.done["status"] == "complete"
    # The model read the service's answer, limited to the declared fields.
    [second] = [r for r in fake.requests[1:] if r.path.endswith("/chat/completions")]
    [answer] = tool_message(second.body)
    order = json.loads(answer["content"])
    assert order["id"] == "1042" and order["status"] == "shipped"
    assert "customer" not in order
    [assistant] = [m for m in tool_message(second.body, "assistant") if m.get("tool_calls")]
    assert assistant["tool_calls"][0]["id"] == answer["tool_call_id"]
    # One usage row per upstream call; the call and its outcome are stored.
    assert await usage_count(db, reply.reply_id) == 2
    [row] = await tool_rows(db, reply.reply_id)
    assert (row["tool"], row["status"], row["round"]) == ("lookup_order", "ok", 1)
    # History carries the step.
    async with httpx.AsyncClient(base_url=server.url) as http:
        history = await http.get(
            f"/v1/conversations/{session['conversation_id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
    [stored] = [m for m in history.json()["messages"] if m["role"] == "assistant"]
    assert stored["tool_calls"] == [
        {
            "call_id": "r1c1",
            "tool": "lookup_order",
            "arguments": {"order_id": "1042"},
            "status": "ok",
            "summary": result["summary"],
        }
    ]


async def test_one_call_on_the_anthropic_wire(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(
        Script(chunks=["Checking."], tool_calls=[("lookup_order", '{"order_id": "1044"}')]),
        Script(chunks=["Delivered."]),
    )
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools_anthropic", "Order 1044?")
    assert [f["status"] for f in reply.tool_results] == ["ok"]
    assert reply.text == "Checking.\n\nDelivered."
    second = fake.requests[1].body
    [use] = [b for b in second["messages"][-2]["content"] if b["type"] == "tool_use"]
    assert (use["name"], use["input"]) == ("lookup_order", {"order_id": "1044"})
    [result] = second["messages"][-1]["content"]
    assert result["tool_use_id"] == use["id"] and result["is_error"] is False
    assert await usage_count(db, reply.reply_id) == 2


async def test_parallel_calls_on_the_openai_wire_run_concurrently(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
    tool_service: ToolService,
) -> None:
    # A hanging call and a quick one in one round: the quick one is not held up
    # by the other (it runs alongside), and each gets its own result.
    fake.enqueue(
        Script(
            tool_calls=[
                ("slow_lookup", '{"key": "late"}'),
                ("lookup_order", '{"order_id": "1042"}'),
            ],
            interleave_tool_calls=True,
        ),
        Script(chunks=["One worked."]),
    )
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools", "Both please")
    results = {r["tool"]: r for r in reply.tool_results}
    assert results["lookup_order"]["status"] == "ok"
    assert results["slow_lookup"]["status"] == "error"
    finished = [f["tool"] for f in reply.tool_results]
    assert finished == ["lookup_order", "slow_lookup"]  # the quick one reported first
    answers = tool_message(fake.requests[1].body)
    assert [a["tool_call_id"] for a in answers] == [
        c["id"] for c in tool_message(fake.requests[1].body, "assistant")[-1]["tool_calls"]
    ]
    assert await usage_count(db, reply.reply_id) == 2


async def test_parallel_calls_on_the_anthropic_wire(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(
        Script(
            tool_calls=[
                ("lookup_order", '{"order_id": "1042"}'),
                ("lookup_order", '{"order_id": "1043"}'),
            ]
        ),
        Script(chunks=["Both found."]),
    )
    reply = await ask_once(
        server.ws_url, make_token()[1], "agent_tools_anthropic", "Orders 1042 and 1043?"
    )
    results = reply.tool_results
    assert sorted(r["call_id"] for r in results) == ["r1c1", "r1c2"]
    assert all(r["status"] == "ok" for r in results)
    second = fake.requests[1].body
    # Both results in one user turn, each answering its tool_use block.
    turn = second["messages"][-1]
    assert turn["role"] == "user"
    blocks = [b for b in turn["content"] if b["type"] == "tool_result"]
    uses = [b for b in second["messages"][-2]["content"] if b["type"] == "tool_use"]
    assert [b["tool_use_id"] for b in blocks] == [u["id"] for u in uses]
    assert json.loads(blocks[1]["content"])["id"] == "1043"
    assert reply.done is not None and reply.done["status"] == "complete"
    assert await usage_count(db, reply.reply_id) == 2


async def test_a_tool_the_agent_may_not_use_is_refused(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(
        Script(tool_calls=[("create_ticket", '{"subject": "x", "description": "y"}')]),
        Script(chunks=["I cannot do that here."]),
    )
    # The rule set allows the tool; the agent does not.
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools_narrow", "Open a ticket")
    assert [(f["type"], f["status"]) for f in reply.tool_frames] == [("tool_result", "refused")]
    assert any(n["rule"] == "tools" and n["action"] == "refused" for n in reply.notices)
    # The model was only ever offered the agent's tools, and read an error.
    assert [t["function"]["name"] for t in fake.requests[0].body["tools"]] == ["lookup_order"]
    [answer] = tool_message(fake.requests[1].body)
    assert "not available" in answer["content"]
    [row] = await tool_rows(db, reply.reply_id)
    assert row["status"] == "refused"
    assert reply.done is not None and reply.done["status"] == "complete"


async def test_a_confirmed_side_effect_runs_once_with_an_idempotency_key(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Printer on fire {uuid.uuid4().hex[:6]}"
    fake.enqueue(
        ticket_call(subject, "It smokes when printing."), Script(chunks=["Ticket opened."])
    )
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_tools")
        accepted = await client.say("Please open a ticket")
        asked = await client.reply(accepted["reply_id"], until=awaiting)
        call = asked.tool_frames[-1]
        assert call["arguments"]["subject"] == subject
        assert tickets(orders_service, subject) == []  # nothing runs before approval
        await client.confirm(accepted["reply_id"], call["call_id"], approve=True)
        rest = await client.reply(accepted["reply_id"])
    assert [(f["type"], f["status"]) for f in rest.tool_frames] == [
        ("tool_call", "running"),
        ("tool_result", "ok"),
    ]
    [ticket] = tickets(orders_service, subject)
    assert ticket["id"] in rest.tool_frames[-1]["summary"] or ticket["id"] in json.dumps(
        tool_message(fake.requests[1].body)
    )
    [row] = await tool_rows(db, accepted["reply_id"])
    assert (row["status"], row["side_effects"], row["decided_by"]) == (
        "ok",
        True,
        row["decided_by"],
    )
    assert row["decided_by"]


async def test_a_declined_call_never_runs(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Declined {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject, "Please do not open this."), Script(chunks=["Okay."]))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_tools")
        accepted = await client.say("Open a ticket?")
        asked = await client.reply(accepted["reply_id"], until=awaiting)
        await client.confirm(accepted["reply_id"], asked.tool_frames[-1]["call_id"], approve=False)
        rest = await client.reply(accepted["reply_id"])
    assert [(f["type"], f["status"]) for f in rest.tool_frames] == [("tool_result", "declined")]
    assert tickets(orders_service, subject) == []
    [answer] = tool_message(fake.requests[1].body)
    assert "declined" in answer["content"]
    [row] = await tool_rows(db, accepted["reply_id"])
    assert row["status"] == "declined"


async def test_a_confirmation_on_another_instance_resumes_the_tool_round(
    server: ParleyServer,
    server_b: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Cross-instance {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject, "Approved elsewhere."), Script(chunks=["Done."]))
    _, token = make_token()
    async with await ChatClient.connect(server.ws_url, token) as first:
        await first.start(agent="agent_tools")
        accepted = await first.say("Open a ticket")
        reply_id = accepted["reply_id"]
        asked = await first.reply(reply_id, until=awaiting)
    # The tab closed mid-round; another instance picks the reply up from the start.
    async with await ChatClient.connect(server_b.ws_url, token) as second:
        await second.send({"type": "resume", "reply_id": reply_id, "after_seq": 0})
        replayed = await second.reply(reply_id, until=awaiting)
        assert replayed.tool_frames == asked.tool_frames
        await second.confirm(reply_id, asked.tool_frames[-1]["call_id"], approve=True)
        rest = await second.reply(reply_id)
        # A second answer is refused: the call is no longer waiting.
        await second.confirm(reply_id, asked.tool_frames[-1]["call_id"], approve=False)
        late = await second.expect("error")
    assert rest.tool_results[-1]["status"] == "ok"
    assert rest.text == "Done."
    assert len(tickets(orders_service, subject)) == 1
    assert (late["code"], late["call_id"]) == ("conflict", asked.tool_frames[-1]["call_id"])


async def test_an_unanswered_confirmation_declines_the_call(
    server_env: dict[str, str],
    fake: FakeLLM,
    make_token: TokenFactory,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Nobody answered {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject, "Left waiting."), Script(chunks=["Okay."]))
    with ParleyServer(
        {**server_env, "PARLEY_TOOL_CONFIRM_TIMEOUT_SECONDS": "0.5"}, name="parley-impatient"
    ) as impatient:
        reply = await ask_once(impatient.ws_url, make_token()[1], "agent_tools", "Open a ticket")
    assert [(f["type"], f["status"]) for f in reply.tool_frames] == [
        ("tool_call", "awaiting_confirmation"),
        ("tool_result", "declined"),
    ]
    assert "in time" in reply.tool_results[0]["summary"]
    assert tickets(orders_service, subject) == []
    assert reply.done is not None and reply.done["status"] == "complete"


async def test_a_tool_that_hangs_times_out_as_a_tool_error(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    tool_service: ToolService,
) -> None:
    fake.enqueue(
        Script(tool_calls=[("slow_lookup", '{"key": "abc"}')]), Script(chunks=["It timed out."])
    )
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools", "Look up abc")
    [result] = reply.tool_results
    assert result["status"] == "error" and "within 1s" in result["summary"]
    assert tool_service.calls["/slow/abc"] == 1
    [answer] = tool_message(fake.requests[1].body)
    assert "within 1s" in answer["content"]
    assert reply.done is not None and reply.done["status"] == "complete"


async def test_cancel_during_a_call_stops_it_and_the_reply(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    tool_service: ToolService,
    db: asyncpg.Connection,
) -> None:
    fake.enqueue(Script(tool_calls=[("slow_lookup", '{"key": "cancelme"}')]))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_tools")
        accepted = await client.say("Look up cancelme")
        reply_id = accepted["reply_id"]
        running = await client.reply(
            reply_id, until=lambda f: f["type"] == "tool_call" and f["status"] == "running"
        )
        await asyncio.to_thread(tool_service.entered.wait, 10)
        await client.send({"type": "cancel", "reply_id": reply_id})
        rest = await client.reply(reply_id)
    assert running.tool_frames[-1]["tool"] == "slow_lookup"
    [result] = rest.tool_results
    assert result["status"] == "error" and "cancelled" in result["summary"]
    assert rest.done is not None and rest.done["status"] == "cancelled"
    assert len([r for r in fake.requests if r.path.endswith("/chat/completions")]) == 1
    [row] = await tool_rows(db, reply_id)
    assert row["status"] == "error"


async def test_a_tool_result_with_pii_is_redacted_before_the_model_reads_it(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    tool_service: ToolService,
) -> None:
    fake.enqueue(
        Script(tool_calls=[("customer_record", '{"customer_id": "c-7"}')]),
        Script(chunks=["Found the customer."]),
    )
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools", "Who is customer c-7?")
    [answer] = tool_message(fake.requests[1].body)
    assert "ada.lovelace@example.com" not in answer["content"]
    assert "4111" not in answer["content"]
    assert "Prefers e-mail." in answer["content"]  # the rest of the record is intact
    assert any(n["action"] == "redacted" for n in reply.notices)
    assert tool_service.calls["/customers/c-7"] == 1


async def test_handoff_to_human_marks_the_conversation(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    fake.enqueue(
        Script(tool_calls=[("handoff_to_human", '{"reason": "wants a refund over the limit"}')]),
        Script(chunks=["A colleague will take over."]),
    )
    session, reply = await start_and_ask(
        server.ws_url, make_token()[1], "agent_tools", "I want to talk to a person"
    )
    assert reply.tool_results[0]["status"] == "ok"
    assert any(n["action"] == "handoff" for n in reply.notices)
    needs_human = await db.fetchval(
        "SELECT needs_human FROM conversations WHERE id = $1",
        uuid.UUID(session["conversation_id"]),
    )
    assert needs_human is True


async def test_tool_rounds_stop_at_the_rule_sets_limit(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    call = Script(tool_calls=[("lookup_order", '{"order_id": "1042"}')])
    fake.enqueue(call, call, Script(chunks=["Here is what I found."]))
    # tool_lab allows 2 rounds.
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools", "Keep looking")
    chats = [r for r in fake.requests if r.path.endswith("/chat/completions")]
    assert len(chats) == 3
    assert "tool_choice" not in chats[0].body and "tool_choice" not in chats[1].body
    assert chats[2].body["tool_choice"] == "none"  # described, but no more calls
    assert len(reply.tool_results) == 2
    assert reply.text == "Here is what I found."
    assert await usage_count(db, reply.reply_id) == 3


async def test_invalid_arguments_go_back_to_the_model_as_an_error(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(
        Script(tool_calls=[("lookup_order", '{"order_id": "../../admin"}')]),
        Script(chunks=["That is not an order number."]),
    )
    reply = await ask_once(server.ws_url, make_token()[1], "agent_tools", "Look up ../../admin")
    [result] = reply.tool_results
    assert result["status"] == "error" and "Invalid arguments" in result["summary"]
    [answer] = tool_message(fake.requests[1].body)
    assert answer["content"].startswith("Error: Invalid arguments")


async def test_the_budget_running_out_mid_loop_ends_the_reply(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory, db: asyncpg.Connection
) -> None:
    # The first round reports most of the day's budget used: the next round's
    # worst case no longer fits, so it is never requested.
    fake.enqueue(
        Script(tool_calls=[("lookup_order", '{"order_id": "1042"}')], prompt_tokens=2_900),
        Script(chunks=["never sent"]),
    )
    reply = await ask_once(
        server.ws_url, make_token()[1], "agent_tools_budget", "Where is order 1042?"
    )
    assert [e["code"] for e in reply.errors] == ["budget_exceeded"]
    assert reply.done is not None and reply.done["status"] == "failed"
    assert len([r for r in fake.requests if r.path.endswith("/chat/completions")]) == 1
    assert await usage_count(db, reply.reply_id) == 1
    assert reply.tool_results[0]["status"] == "ok"  # the round it paid for completed


async def test_the_demo_model_calls_the_shipped_order_tool(
    server: ParleyServer, make_token: TokenFactory
) -> None:
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_demo_tools")
        reply: Reply = await client.ask("Where is my order 1042?")
    [call, result] = reply.tool_frames
    assert (call["tool"], call["arguments"]) == ("lookup_order", {"order_id": "1042"})
    assert result["status"] == "ok"
    assert "shipped" in reply.text
    assert reply.done is not None and reply.done["status"] == "complete"


async def test_a_side_effect_is_never_repeated_when_its_instance_dies(
    server: ParleyServer,
    server_env: dict[str, str],
    fake: FakeLLM,
    make_token: TokenFactory,
    db: asyncpg.Connection,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Survives a crash {uuid.uuid4().hex[:6]}"
    fake.enqueue(
        ticket_call(subject, "Opened just before a crash."),
        Script(chunks=["Your ticket is "], hold=True),  # the next round hangs: kill it there
    )
    _, token = make_token()
    doomed = ParleyServer(server_env, name="parley-doomed-tools").start()
    try:
        async with await ChatClient.connect(doomed.ws_url, token) as client:
            session = await client.start(agent="agent_tools")
            accepted = await client.say("Open a ticket")
            reply_id = accepted["reply_id"]
            asked = await client.reply(reply_id, until=awaiting)
            await client.confirm(reply_id, asked.tool_frames[-1]["call_id"], approve=True)
            seen = await client.reply(reply_id, until=lambda f: f["type"] == "delta")
            doomed.kill()
    finally:
        doomed.kill()
    async with await ChatClient.connect(server.ws_url, token) as survivor:
        await survivor.start(session_id=session["session_id"])
        await survivor.send({"type": "resume", "reply_id": reply_id, "after_seq": 0})
        replayed = await survivor.reply(reply_id)
    assert replayed.done is not None and replayed.done["status"] == "interrupted"
    assert [f["status"] for f in replayed.tool_results] == ["ok"]  # the recorded outcome
    assert replayed.text == seen.text and seen.text.startswith("Your ticket")
    assert len(tickets(orders_service, subject)) == 1  # ran once, and never again
    [row] = await tool_rows(db, reply_id)
    assert row["status"] == "ok"
    usage = await db.fetch(
        "SELECT u.status, u.estimated FROM llm_usage u JOIN messages m ON m.id = u.message_id"
        " WHERE m.reply_id = $1 ORDER BY u.id",
        uuid.UUID(reply_id),
    )
    # The round that asked for the ticket, stored before it ran; the round that
    # died with its instance, estimated by the instance that closed the reply.
    assert [(u["status"], u["estimated"]) for u in usage] == [
        ("complete", False),
        ("interrupted", True),
    ]


async def test_an_mcp_tool_answers_through_the_example_server(
    server: ParleyServer, fake: FakeLLM, make_token: TokenFactory
) -> None:
    fake.enqueue(
        Script(tool_calls=[("status_page__service_status", '{"service": "vpn"}')]),
        Script(chunks=["The VPN is degraded."]),
    )
    # technical_support allows status_page.
    reply = await ask_once(server.ws_url, make_token()[1], "agent_gamma", "Is the VPN down?")
    offered = {t["function"]["name"] for t in fake.requests[0].body["tools"]}
    assert {"status_page__service_status", "status_page__known_issues"} <= offered
    [result] = reply.tool_results
    assert result["status"] == "ok"
    [answer] = tool_message(fake.requests[1].body)
    assert "degraded" in answer["content"] and "EU-West" in answer["content"]


async def test_rest_chat_stops_at_a_confirmation_and_continues_after_it(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Over REST {uuid.uuid4().hex[:6]}"
    fake.enqueue(ticket_call(subject, "Opened by a REST client."), Script(chunks=["Opened."]))
    headers = {"Authorization": f"Bearer {make_token()[1]}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=20) as http:
        first = await http.post(
            "/v1/chat", json={"agent": "agent_tools", "message": "Open a ticket"}
        )
        assert first.status_code == 200, first.text
        body = first.json()
        reply = body["reply"]
        assert reply["status"] == "awaiting_confirmation"
        [call] = reply["tool_calls"]
        assert (call["tool"], call["status"]) == ("create_ticket", "awaiting_confirmation")
        reply_id = body["reply_id"]
        # Someone else's confirmation is not found; a malformed one is a bad request.
        stranger = {"Authorization": f"Bearer {make_token()[1]}"}
        other = await http.post(
            f"/v1/replies/{reply_id}/confirm",
            json={"call_id": call["call_id"], "approve": True},
            headers=stranger,
        )
        assert other.status_code == 404
        bad = await http.post(f"/v1/replies/{reply_id}/confirm", json={"approve": "yes"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
        confirmed = await http.post(
            f"/v1/replies/{reply_id}/confirm", json={"call_id": call["call_id"], "approve": True}
        )
        assert confirmed.json() == {
            "reply_id": reply_id,
            "call_id": call["call_id"],
            "approve": True,
        }
        again = await http.post(
            f"/v1/replies/{reply_id}/confirm", json={"call_id": call["call_id"], "approve": True}
        )
        assert again.status_code == 422 and again.json()["error"]["code"] == "conflict"
        rest = await http.get(f"/v1/replies/{reply_id}", params={"after_seq": reply["last_seq"]})
        assert rest.status_code == 200, rest.text
        done = rest.json()["reply"]
        streamed = await http.get(f"/v1/replies/{reply_id}", params={"stream": "true"})
    assert done["status"] == "complete" and done["text"] == "Opened."
    assert [c["status"] for c in done["tool_calls"]] == ["ok"]
    assert len(tickets(orders_service, subject)) == 1
    events = [
        line.removeprefix("event: ")
        for line in streamed.text.splitlines()
        if line.startswith("event: ")
    ]
    assert events[:4] == ["tool_call", "tool_call", "tool_result", "delta"]
    assert events[-1] == "done"


async def test_arguments_are_redacted_before_they_leave_for_a_third_party(
    server: ParleyServer,
    fake: FakeLLM,
    make_token: TokenFactory,
    orders_service: BackgroundServer,
) -> None:
    subject = f"Card trouble {uuid.uuid4().hex[:6]}"
    description = "Charged twice on 4111 1111 1111 1111, reach me at ada@example.com please."
    fake.enqueue(ticket_call(subject, description), Script(chunks=["Opened."]))
    async with await ChatClient.connect(server.ws_url, make_token()[1]) as client:
        await client.start(agent="agent_tools")
        accepted = await client.say("Open a ticket about the double charge")
        asked = await client.reply(accepted["reply_id"], until=awaiting)
        call = asked.tool_frames[-1]
        await client.confirm(accepted["reply_id"], call["call_id"], approve=True)
        rest = await client.reply(accepted["reply_id"])
    # What the user is asked to approve is what the service will receive...
    assert "4111" not in call["arguments"]["description"]
    assert "ada@example.com" not in call["arguments"]["description"]
    assert "Charged twice" in call["arguments"]["description"]
    assert any(n["action"] == "redacted" for n in asked.notices)
    # ...and what it received.
    [ticket] = tickets(orders_service, subject)
    assert ticket["description"] == call["arguments"]["description"]
    assert rest.tool_results[-1]["status"] == "ok"

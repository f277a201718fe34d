"""Conversations that more than one module plays against servers of its own.

tests/test_ws_replies.py and tests/test_rules_e2e.py play them on instances
sharing one Redis; tests/test_redis_cluster.py plays the same steps on a
Redis Cluster. Each returns what the tests assert on; the asserts stay in
the tests.
"""

from __future__ import annotations

from support.client import ChatClient, Frame, Reply
from support.fake_llm import FakeLLM, Script
from support.server import ParleyServer


async def resumed_on_another_instance(
    first: ParleyServer, second: ParleyServer, fake: FakeLLM, token: str
) -> tuple[Reply, Reply]:
    """A reply begun on ``first``, its client gone after the first frame, resumed on ``second``.

    Returns what the first client saw and the rest, read on ``second``.
    """
    fake.enqueue(Script(chunks=["Alpha. "], hold=True, after_release=["Bravo. ", "Charlie. "]))
    async with await ChatClient.connect(first.ws_url, token) as client:
        session = await client.start(agent="agent_gamma")
        accepted = await client.say("go")
        seen = await client.reply(accepted["reply_id"], until_seq=1)
    async with await ChatClient.connect(second.ws_url, token) as other:
        again = await other.start(session_id=session["session_id"])
        assert again["active_reply"]["reply_id"] == accepted["reply_id"]
        await other.send(
            {"type": "resume", "reply_id": accepted["reply_id"], "after_seq": seen.seqs[-1]}
        )
        fake.release()
        rest = await other.reply(accepted["reply_id"])
    return seen, rest


async def cancelled_from_another_instance(
    first: ParleyServer, second: ParleyServer, fake: FakeLLM, token: str
) -> Reply:
    """A reply begun on ``first``, cancelled by the same user on ``second`` after its
    first frame; returns the rest of it, read on ``first``."""
    fake.enqueue(Script(chunks=["Checking the logs now. "], hold=True))
    async with await ChatClient.connect(first.ws_url, token) as client:
        await client.start(agent="agent_gamma")
        accepted = await client.say("help")
        await client.reply(accepted["reply_id"], until_seq=1)
        async with await ChatClient.connect(second.ws_url, token) as other:
            # Over the control channel: on a cluster, classic pub/sub reaches every
            # node's subscribers.
            await other.send({"type": "cancel", "reply_id": accepted["reply_id"]})
            return await client.reply(accepted["reply_id"])


async def over_the_daily_budget(server: ParleyServer, fake: FakeLLM, token: str) -> Frame:
    """Spend 1,200 of agent_budget's 2,000 daily tokens, then ask again.

    The second turn would reserve its prompt plus 500 reply tokens, which no
    longer fits: returns the error frame it is refused with.
    """
    fake.enqueue(Script(chunks=["Check the cable."], prompt_tokens=1000, completion_tokens=200))
    async with await ChatClient.connect(server.ws_url, token) as client:
        await client.start(agent="agent_budget")
        spent = await client.ask("My printer is offline")
        assert spent.done is not None and spent.done["usage"]["total_tokens"] == 1200
        await client.send({"type": "message", "client_id": "over", "text": "And the scanner?"})
        return await client.expect("error")


async def killed_mid_reply(
    env: dict[str, str], name: str, token: str
) -> tuple[Frame, Frame, Reply]:
    """Start a server of ``env``, begin a reply on it, kill it after the reply's first frame.

    The kill is a SIGKILL (no shutdown code runs), so the fake vendor must hold
    the reply. Returns the session, the ``accepted`` frame and what was read.
    """
    doomed = ParleyServer(env, name=name).start()
    try:
        async with await ChatClient.connect(doomed.ws_url, token) as client:
            session = await client.start(agent="agent_gamma")
            accepted = await client.say("go")
            seen = await client.reply(accepted["reply_id"], until_seq=1)
            doomed.kill()
    finally:
        doomed.kill()
    return session, accepted, seen

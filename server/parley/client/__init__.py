"""Parley's WebSocket protocol on the client side, async, on ``websockets``.

::

    from parley.client import ParleyClient

    async with await ParleyClient.connect("wss://parley.example.com/ws", token) as client:
        await client.start(agent="agent_gamma")
        reply = await client.send("My wifi keeps dropping")
        async for frame in reply:  # typed frames of parley.protocol
            if isinstance(frame, DeltaFrame):
                print(frame.text, end="")
        done = await reply.done()

A dropped connection is picked up again by itself: the client reconnects,
re-attaches to its session and resumes every unfinished reply by ``seq``.
:class:`Connection` is the layer beneath, one WebSocket frame by frame.
The JavaScript client (``clients/js``) is the same in another language.
"""

from parley.client.chat import Backoff, ParleyClient, connect
from parley.client.connection import Connection
from parley.client.errors import ParleyError
from parley.client.reply import Reply

__all__ = ["Backoff", "Connection", "ParleyClient", "ParleyError", "Reply", "connect"]

"""What :class:`parley.chat.ChatService` answers with, and the frames clients see of it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from parley.catalog import Agent
from parley.protocol import AcceptedFrame, ActiveReply, AgentInfo, SessionFrame
from parley.sessions import Session
from parley.storage.records import Conversation, Message


@dataclass(frozen=True, slots=True)
class Accepted:
    client_id: str
    message_id: UUID
    reply_id: str | None  # None: a person holds the conversation, the agent does not reply
    text: str  # the message as stored: input redactions applied
    redacted: bool
    duplicate: bool = False

    def frame(self) -> AcceptedFrame:
        return AcceptedFrame(
            client_id=self.client_id,
            message_id=str(self.message_id),
            reply_id=self.reply_id,
            text=self.text,
            redacted=self.redacted,
        )


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    conversation: Conversation
    agent: Agent
    max_message_chars: int  # the agent's effective limit
    history: list[Message]
    active_reply: ActiveReply | None

    def frame(self) -> SessionFrame:
        agent: AgentInfo = {
            "id": self.agent.id,
            "name": self.agent.name,
            "personality": self.agent.personality.id,
            "rules": self.agent.rules.id,
            "max_message_chars": self.max_message_chars,
        }
        return SessionFrame(
            session_id=self.session.id,
            conversation_id=str(self.conversation.id),
            agent=agent,
            history=[message.public() for message in self.history],
            active_reply=self.active_reply,
            handoff=self.conversation.handoff(),
        )

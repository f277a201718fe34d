"""A server frame of a reply, encoded to JSON once and sent as is everywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.protocol import ServerFrame

Frame = dict[str, Any]  # a frame as decoded from JSON

# Frames numbered by ``seq``, in one sequence with no gaps: resume replays
# those after the client's last seq exactly once.
NUMBERED = frozenset({"delta", "tool_call", "tool_result", "sources"})


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # the frame's type: delta, tool_call, tool_result, notice, error, done or resync
    at: int  # a numbered frame's seq; for other frames, the seq of the frame before them
    json: str

    @classmethod
    def of(cls, frame: ServerFrame, at: int) -> Event:
        return cls(frame.type, at, _encode(frame.to_dict()))

    @classmethod
    def delta(cls, reply_id: str, seq: int, text: str) -> Event:
        # Built by hand: one per token, and json.dumps of the frame cost more
        # than the rest of making it. Same bytes as _encode(DeltaFrame(...).to_dict()).
        encoded = (
            f'{{"type":"delta","reply_id":{_string(reply_id)},"seq":{seq:d},'
            f'"text":{_string(text)}}}'
        )
        return cls("delta", seq, encoded)

    @property
    def frame(self) -> Frame:
        decoded: Frame = json.loads(self.json)
        return decoded

    @property
    def numbered(self) -> bool:
        return self.kind in NUMBERED

    @property
    def ends_reply(self) -> bool:
        return self.kind in ("done", "resync")

    def follows(self, after_seq: int) -> bool:
        """Whether a client that has seen frames up to ``after_seq`` should get it.

        Numbered frames are never repeated. Other frames at the resume point
        are, so a notice that raced a disconnect is seen twice rather than never.
        """
        return self.at > after_seq if self.kind in NUMBERED else self.at >= after_seq


# The C string encoder json.dumps(..., ensure_ascii=False) uses.
_string = json.encoder.encode_basestring


def _encode(frame: Frame) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)

-- Tool calls: every call a model asked for, what was decided and what came
-- back. A side-effecting call's row is written before it runs and its
-- outcome before the model continues, so no call is ever made twice and a
-- reply interrupted mid-round still says what happened.

CREATE TABLE tool_calls (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reply_id        uuid NOT NULL REFERENCES messages (reply_id) ON DELETE CASCADE,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    call_id         text NOT NULL,
    round           integer NOT NULL,
    tool            text NOT NULL,
    -- As sent to the tool (input redactions applied), or as the model wrote
    -- them when they never reached it (refused, invalid, declined).
    arguments       jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN (
                        'awaiting_confirmation', 'running', 'ok', 'error',
                        'refused', 'declined', 'interrupted')),
    summary         text NOT NULL DEFAULT '',
    result          text,  -- what the model saw
    side_effects    boolean NOT NULL,
    decided_by      text,  -- who approved or declined a confirmation
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (reply_id, call_id)
);
CREATE INDEX tool_calls_conversation ON tool_calls (conversation_id, id);

-- The model a reply was first sent to: if its instance dies mid-call, the
-- sweeper records that call's usage (estimated) against it.
ALTER TABLE messages ADD COLUMN model text;

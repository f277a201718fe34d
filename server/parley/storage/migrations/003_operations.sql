-- Operating Parley: people taking conversations over from the agent,
-- feedback on replies, generated titles, and the handoff webhook's deliveries.
-- Every takeover, operator message and release records who did it.

-- A message written by someone other than the conversation's owner (user
-- messages) or its agent (assistant messages): an operator who took over.
-- NULL means the usual author.
ALTER TABLE messages
    ADD COLUMN author_kind text CHECK (author_kind IN ('operator')),
    ADD COLUMN author_id   text,
    ADD COLUMN author_name text;

-- needs_human (since 001) says a person is wanted or is there; taken_by says
-- who is there. While taken_by is set the agent does not reply.
ALTER TABLE conversations
    ADD COLUMN taken_by      text,
    ADD COLUMN taken_by_name text,
    ADD COLUMN taken_at      timestamptz,
    -- provisional: the first message's start; generated: by the agent's model
    -- after the first reply; user: renamed (never overwritten).
    ADD COLUMN title_source  text NOT NULL DEFAULT 'provisional'
        CHECK (title_source IN ('provisional', 'generated', 'user'));
-- The operator queue and the review filters on status.
CREATE INDEX conversations_attention ON conversations (updated_at DESC)
    WHERE needs_human OR taken_by IS NOT NULL;
CREATE INDEX conversations_agent_updated ON conversations (agent_id, updated_at DESC);

-- Each time a conversation asked for a person: an escalation rule, the
-- model's handoff_to_human tool, or the user's own button. At most one is
-- open per conversation; taking over or releasing resolves it.
CREATE TABLE handoffs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    trigger         text NOT NULL CHECK (trigger IN ('rule', 'tool', 'user')),
    rule            text,  -- the escalation rule's id or the tool's name
    reason          text NOT NULL,
    message_id      uuid REFERENCES messages (id) ON DELETE SET NULL,  -- the reply it came with
    requested_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    resolution      text CHECK (resolution IN ('taken', 'released')),
    resolved_by     text
);
CREATE UNIQUE INDEX handoffs_open ON handoffs (conversation_id) WHERE resolved_at IS NULL;

-- Conversations that asked for a person before this migration: open requests.
INSERT INTO handoffs (conversation_id, trigger, rule, reason, requested_at)
SELECT c.id,
       CASE WHEN e.rule = 'handoff_to_human' THEN 'tool' ELSE 'rule' END,
       e.rule,
       coalesce(e.detail, 'asked for a person'),
       coalesce(e.created_at, c.updated_at)
FROM conversations c
LEFT JOIN LATERAL (
    SELECT rule, detail, created_at FROM rule_events
    WHERE conversation_id = c.id AND action = 'handoff' ORDER BY id DESC LIMIT 1
) e ON true
WHERE c.needs_human;

-- An operator holding a conversation, from taking it over to handing it back.
CREATE TABLE takeovers (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    handoff_id       bigint REFERENCES handoffs (id) ON DELETE SET NULL,
    operator_id      text NOT NULL,
    operator_name    text NOT NULL,
    taken_at         timestamptz NOT NULL DEFAULT now(),
    released_at      timestamptz,
    released_by      text,
    released_by_name text
);
CREATE UNIQUE INDEX takeovers_open ON takeovers (conversation_id) WHERE released_at IS NULL;

-- A user's thumbs up or down on an assistant message of their own
-- conversation: one per user and message, replaced when they change it.
CREATE TABLE feedback (
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id         text NOT NULL REFERENCES users (id),
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent_id        text NOT NULL,
    rating          text NOT NULL CHECK (rating IN ('up', 'down')),
    comment         text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX feedback_conversation ON feedback (conversation_id);

-- What an upstream call was for: a reply, or a conversation's title.
ALTER TABLE llm_usage
    ADD COLUMN purpose text NOT NULL DEFAULT 'reply' CHECK (purpose IN ('reply', 'title'));

-- The handoff webhook: one delivery per handoff, retried with backoff until
-- it succeeds or runs out of attempts. Rows are claimed with a lease
-- (locked_until), so retries survive a restart and no two instances send the
-- same attempt.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handoff_id      bigint REFERENCES handoffs (id) ON DELETE SET NULL,
    conversation_id uuid REFERENCES conversations (id) ON DELETE SET NULL,
    url             text NOT NULL,
    body            text NOT NULL,  -- the JSON sent, the same bytes on every attempt
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    status_code  integer,  -- NULL: no HTTP answer (refused, timed out...)
    error        text,
    duration_ms  integer NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

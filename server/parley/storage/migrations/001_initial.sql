-- Parley's initial schema. Postgres is the record of every conversation,
-- message, upstream call and rule action; Redis only holds live state.

CREATE TABLE users (
    id           text PRIMARY KEY,
    name         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id             uuid PRIMARY KEY,
    owner_id       text NOT NULL REFERENCES users (id),
    agent_id       text NOT NULL,
    personality_id text NOT NULL,
    rules_id       text NOT NULL,
    title          text,
    message_count  integer NOT NULL DEFAULT 0,
    needs_human    boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/conversations: a user's conversations, newest first.
CREATE INDEX conversations_owner_updated ON conversations (owner_id, updated_at DESC);

CREATE TABLE messages (
    id                uuid PRIMARY KEY,
    -- Orders messages within a conversation; two rows written in one
    -- transaction share now(), so timestamps cannot.
    position          bigint GENERATED ALWAYS AS IDENTITY,
    conversation_id   uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role              text NOT NULL CHECK (role IN ('user', 'assistant')),
    content           text NOT NULL,
    status            text NOT NULL CHECK (status IN (
                          'accepted', 'streaming', 'complete', 'cancelled',
                          'failed', 'blocked', 'interrupted')),
    client_id         text,
    reply_id          uuid UNIQUE,
    reply_to          uuid REFERENCES messages (id) ON DELETE CASCADE,
    redacted          boolean NOT NULL DEFAULT false,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer,
    cost_usd          numeric(14, 6),
    estimated         boolean,
    catalog_version   text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    UNIQUE (conversation_id, client_id)
);
CREATE INDEX messages_conversation_position ON messages (conversation_id, position);
-- The sweeper looks for replies left streaming by a dead instance.
CREATE INDEX messages_streaming ON messages (created_at) WHERE status = 'streaming';

CREATE TABLE llm_usage (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id           text NOT NULL REFERENCES users (id),
    conversation_id   uuid REFERENCES conversations (id) ON DELETE SET NULL,
    message_id        uuid REFERENCES messages (id) ON DELETE SET NULL,
    agent_id          text NOT NULL,
    provider          text NOT NULL,
    model             text NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    total_tokens      integer NOT NULL,
    cost_usd          numeric(14, 6) NOT NULL,
    estimated         boolean NOT NULL,
    ttft_ms           integer,
    latency_ms        integer NOT NULL,
    status            text NOT NULL,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/usage: a user's usage by day.
CREATE INDEX llm_usage_user_created ON llm_usage (user_id, created_at);
CREATE INDEX llm_usage_message ON llm_usage (message_id);

CREATE TABLE rule_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id uuid REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      uuid REFERENCES messages (id) ON DELETE SET NULL,
    rule            text NOT NULL,
    action          text NOT NULL,
    detail          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- GET /v1/admin/handoffs: newest handoffs first.
CREATE INDEX rule_events_action_created ON rule_events (action, created_at DESC);
CREATE INDEX rule_events_conversation ON rule_events (conversation_id);

-- REST Idempotency-Key: the same key and body gives the same result.
CREATE TABLE idempotency_keys (
    user_id         text NOT NULL REFERENCES users (id),
    key             text NOT NULL,
    request_hash    text NOT NULL,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);

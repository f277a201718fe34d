-- Knowledge bases (docs/knowledge.md): the documents of each collection, cut
-- into chunks that keep their source (file, heading path, page), with a
-- full-text index. Vectors live in knowledge_embeddings, which start-up
-- creates only where the pgvector extension exists (parley.knowledge.vectors).

CREATE TABLE knowledge_documents (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection   text NOT NULL,
    -- The file's path inside knowledge/<collection>/, or an upload's file name.
    name         text NOT NULL,
    -- catalog: a file of the catalog's knowledge/ folder, kept in step with it by
    -- ingestion; upload: sent through the admin API, never removed by ingestion.
    origin       text NOT NULL CHECK (origin IN ('catalog', 'upload')),
    kind         text NOT NULL CHECK (kind IN ('markdown', 'text', 'html', 'pdf')),
    title        text NOT NULL,
    content_hash text NOT NULL,  -- sha256 of the bytes: an unchanged file is skipped
    bytes        integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection, name)
);

CREATE TABLE knowledge_chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  bigint NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    -- Also on the document; here so that a search filters chunks without a join.
    collection   text NOT NULL,
    ordinal      integer NOT NULL,
    heading_path text[] NOT NULL DEFAULT '{}',
    page         integer,  -- PDFs: the 1-based page the chunk starts on
    -- The document's title and the heading path as one line: searched with a
    -- higher weight than the body, so a question naming a topic finds its section.
    heading      text NOT NULL,
    body         text NOT NULL,
    tokens       integer NOT NULL,  -- estimated, for the prompt's passage budget
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', heading), 'A')
                     || setweight(to_tsvector('english', body), 'B')) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_collection ON knowledge_chunks (collection);

-- Embedding calls. They are not replies (ingestion has no user or message),
-- so they are accounted here rather than in llm_usage: one row per call.
CREATE TABLE knowledge_usage (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purpose         text NOT NULL CHECK (purpose IN ('ingest', 'query')),
    collection      text,  -- ingest: the collection whose chunks were embedded
    user_id         text,  -- query: who asked, and in which conversation and reply
    conversation_id uuid REFERENCES conversations (id) ON DELETE SET NULL,
    reply_id        uuid,
    provider        text NOT NULL,
    model           text NOT NULL,
    input_tokens    integer NOT NULL,
    -- A question's embedding costs well under a micro-dollar: kept to 1e-10.
    cost_usd        numeric(18, 10) NOT NULL,
    estimated       boolean NOT NULL,
    latency_ms      integer NOT NULL,
    status          text NOT NULL CHECK (status IN ('ok', 'error')),
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_usage_created ON knowledge_usage (created_at);

-- The passages a reply was given, as its `sources` frame listed them.
ALTER TABLE messages ADD COLUMN sources jsonb;

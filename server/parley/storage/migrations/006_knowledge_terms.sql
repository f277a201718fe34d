-- Full-text statistics of the knowledge collections, kept by ingestion in the
-- transaction that changes the chunks: how many chunks each collection has and
-- in how many of them each lexeme occurs. Ranking weighs a question's words by
-- their rarity (docs/knowledge.md) and searches only by its rarer words in a
-- large collection; with these, neither needs counting matches per question.

CREATE TABLE knowledge_collections (
    collection text PRIMARY KEY,
    chunks     integer NOT NULL
);

CREATE TABLE knowledge_terms (
    collection text NOT NULL,
    lexeme     text NOT NULL,
    df         integer NOT NULL,  -- chunks of the collection containing the lexeme
    PRIMARY KEY (collection, lexeme)
);

-- Chunks ingested before this migration.
INSERT INTO knowledge_collections (collection, chunks)
SELECT collection, count(*) FROM knowledge_chunks GROUP BY collection;
INSERT INTO knowledge_terms (collection, lexeme, df)
SELECT collection, lexeme, count(*)
FROM knowledge_chunks, unnest(tsvector_to_array(tsv)) AS lexeme
GROUP BY collection, lexeme;

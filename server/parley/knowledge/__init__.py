"""Knowledge bases: documents an agent may cite, searched for every question.

A collection is a folder ``knowledge/<collection>/`` of the catalog (plus
documents uploaded through the admin API). Ingestion cuts each document into
chunks that follow its headings and paragraphs (:mod:`.chunking`) and stores
them in Postgres with a full-text index (:mod:`.store`), and with embeddings
when a model is configured and pgvector exists (:mod:`.vectors`). Retrieval
(:mod:`.retrieval`) fuses full-text and vector ranks; the passages go into the
prompt as delimited, untrusted data (:mod:`.prompt`). See docs/knowledge.md.
"""

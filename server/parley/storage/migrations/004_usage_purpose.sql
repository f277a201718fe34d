-- What an upstream call was for: 'reply' (the reply's own model calls),
-- 'classifier' (a classifier rule judging the user's message, linked to the
-- reply's assistant message like the reply's calls) or 'title'.
-- 003 added the column for 'reply' and 'title'; IF NOT EXISTS keeps this
-- migration right on its own as well. The column's check is replaced whole.
ALTER TABLE llm_usage ADD COLUMN IF NOT EXISTS purpose text NOT NULL DEFAULT 'reply';
ALTER TABLE llm_usage DROP CONSTRAINT IF EXISTS llm_usage_purpose_check;
ALTER TABLE llm_usage ADD CONSTRAINT llm_usage_purpose_check
    CHECK (purpose IN ('reply', 'classifier', 'title'));

-- 002 (release v2): per-message token accounting and the model an agent uses.
ALTER TABLE messages ADD COLUMN token_count integer;
ALTER TABLE agents ADD COLUMN model text;
UPDATE agents SET model = CASE provider WHEN 'anthropic' THEN 'claude-3-5-sonnet' ELSE 'gpt-4o' END;

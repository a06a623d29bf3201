-- 001_init: the LLMChat core tables.
-- messages.session_id deliberately has no foreign key to chat_sessions: the weekly maintenance of the
-- operations guide purges idle sessions and, separately, "orphan" messages whose session is gone.
CREATE TABLE agents (
  id         text PRIMARY KEY,
  name       text NOT NULL,
  provider   text NOT NULL,
  is_active  boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat_sessions (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    text NOT NULL,
  agent_id   text,
  title      text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
  id         bigserial PRIMARY KEY,
  session_id uuid NOT NULL,
  role       text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  content    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_messages_created_at ON messages (created_at);
CREATE INDEX idx_sessions_user_id ON chat_sessions (user_id);
CREATE INDEX idx_messages_session_created ON messages (session_id, created_at);

INSERT INTO agents (id, name, provider) VALUES
  ('default', 'LLMChat Assistant', 'openai'),
  ('claude', 'Claude', 'anthropic');

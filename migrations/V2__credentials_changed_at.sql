-- When a user's credentials (the password) last changed: access tokens issued before it are
-- refused, so a stolen token dies with the password it was obtained with. NULL: never
-- changed since the account was created (every token of the account stays valid).
ALTER TABLE users ADD COLUMN credentials_changed_at timestamptz;

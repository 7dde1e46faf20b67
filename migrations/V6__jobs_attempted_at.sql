-- When the running (or last) attempt was claimed: how long a job waited after its enqueue
-- (attempted_at - created_at on a first attempt), and how long a running one has been at it.
ALTER TABLE jobs ADD COLUMN attempted_at timestamptz;

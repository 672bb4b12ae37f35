-- The client's `Idempotency-Key` of the request that logged a meal, and a fingerprint of that
-- request, so that a retried POST (its first answer lost to a dropped connection or a killed
-- replica) returns the meal it logged instead of logging it twice. Unique per user; NULL for
-- meals logged without a key (NULLs never collide).
ALTER TABLE meals ADD COLUMN idempotency_key VARCHAR(64) NULL;
ALTER TABLE meals ADD COLUMN request_hash VARCHAR(64) NULL;
CREATE UNIQUE INDEX meals_user_idempotency_key ON meals (user_id, idempotency_key);

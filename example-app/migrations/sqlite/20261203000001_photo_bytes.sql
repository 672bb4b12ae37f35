-- Each meal's photo size, so that a user's photo storage can be capped (PHOTO_QUOTA_BYTES)
-- with one indexed sum instead of a walk of the photo folder.
ALTER TABLE meals ADD COLUMN photo_bytes BIGINT NOT NULL DEFAULT 0;

-- The calories schema for SQLite (the embedded default). Times are Unix seconds (UTC), so both
-- databases compare and index them the same way; grams are REAL.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    daily_goal    INTEGER NOT NULL DEFAULT 2000,
    time_zone     TEXT    NOT NULL DEFAULT 'UTC',
    created_at    INTEGER NOT NULL
);

CREATE TABLE meals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    eaten_at    INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    calories    INTEGER NOT NULL,
    protein_g   REAL    NOT NULL,
    fat_g       REAL    NOT NULL,
    carbs_g     REAL    NOT NULL,
    photo       TEXT    NULL,
    photo_type  TEXT    NULL,
    created_at  INTEGER NOT NULL
);
-- Every meal query filters on the owner and a time range (a day, a window, a page by time).
CREATE INDEX meals_user_eaten_at ON meals (user_id, eaten_at, id);

CREATE TABLE foods (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    name_lower TEXT    NOT NULL,
    kcal       INTEGER NOT NULL,
    protein_g  REAL    NOT NULL,
    fat_g      REAL    NOT NULL,
    carbs_g    REAL    NOT NULL
);
-- Prefix searches (`name_lower LIKE 'chick%'`) and the ordered listing use this index.
CREATE INDEX foods_name_lower ON foods (name_lower);

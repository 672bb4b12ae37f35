-- The calories schema for MySQL 8 / MariaDB 10.6+. Times are Unix seconds (UTC) in BIGINT, so
-- both databases compare and index them the same way; integers are BIGINT and grams DOUBLE,
-- the types sqlx's Any driver reads from both.
CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    name          VARCHAR(100) NOT NULL DEFAULT '',
    daily_goal    BIGINT       NOT NULL DEFAULT 2000,
    time_zone     VARCHAR(64)  NOT NULL DEFAULT 'UTC',
    created_at    BIGINT       NOT NULL,
    UNIQUE KEY users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE meals (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id     BIGINT       NOT NULL,
    eaten_at    BIGINT       NOT NULL,
    name        VARCHAR(200) NOT NULL,
    calories    BIGINT       NOT NULL,
    protein_g   DOUBLE       NOT NULL,
    fat_g       DOUBLE       NOT NULL,
    carbs_g     DOUBLE       NOT NULL,
    photo       VARCHAR(64)  NULL,
    photo_type  VARCHAR(32)  NULL,
    created_at  BIGINT       NOT NULL,
    -- Every meal query filters on the owner and a time range (a day, a window, a page by time).
    KEY meals_user_eaten_at (user_id, eaten_at, id),
    CONSTRAINT meals_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE foods (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(120) NOT NULL,
    name_lower VARCHAR(120) NOT NULL,
    kcal       BIGINT       NOT NULL,
    protein_g  DOUBLE       NOT NULL,
    fat_g      DOUBLE       NOT NULL,
    carbs_g    DOUBLE       NOT NULL,
    UNIQUE KEY foods_name (name),
    -- Prefix searches (`name_lower LIKE 'chick%'`) and the ordered listing use this index.
    KEY foods_name_lower (name_lower)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Staff accounts with server-enforced roles, and their login sessions (issue 8).
-- 21 CFR 11.10(d)/(g): access limited to authorised people, authority checks per action;
-- 11.300: unique identities, passwords, lockout after repeated failures.

CREATE TABLE staff_users (
    user_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Stored lower-case so one person cannot hold two accounts differing in case.
    email           text NOT NULL UNIQUE CHECK (email = lower(email) AND email ~ '^[^@\s]+@[^@\s]+$'),
    display_name    text NOT NULL CHECK (length(btrim(display_name)) > 0),
    role            text NOT NULL CHECK (role IN ('logistics', 'qa', 'clinical', 'admin')),
    -- scrypt$N$r$p$salt$hash (base64): the parameters travel with the hash.
    password_hash   text NOT NULL CHECK (password_hash LIKE 'scrypt$%'),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until    timestamptz
);

CREATE TABLE staff_sessions (
    session_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- SHA-256 of the 256-bit random token: the token itself is never stored.
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES staff_users,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX staff_sessions_user_idx ON staff_sessions (user_id) WHERE revoked_at IS NULL;

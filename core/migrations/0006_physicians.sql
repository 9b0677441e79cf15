-- Treating physicians abroad (DESIGN.md §8). The patient stays pseudonymous: a case holds
-- only its reference; the physician is the person this system contacts about it.

CREATE TABLE physicians (
    physician_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    licence_no   text NOT NULL CHECK (length(btrim(licence_no)) BETWEEN 1 AND 64),
    institution  text NOT NULL CHECK (length(btrim(institution)) BETWEEN 1 AND 200),
    country      text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    mobile_e164  text NOT NULL CHECK (mobile_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    email        text CHECK (email IS NULL OR email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (country, licence_no)
);

ALTER TABLE cases ADD COLUMN physician_id bigint REFERENCES physicians;
CREATE INDEX cases_physician_idx ON cases (physician_id);

-- Credentials for the two ways data comes in: MQTT (per device, in the broker's password
-- file) and HTTP (per carrier API key). Only hashes are stored.

-- Mosquitto password-file hash of the device's MQTT password ($7$ PBKDF2-SHA512), written
-- to the broker's password file by `coldchain devices export-passwd`.
ALTER TABLE devices ADD COLUMN mqtt_password_hash text;

CREATE TABLE carrier_api_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[a-z0-9]{8,32}$'),
    carrier      text NOT NULL CHECK (carrier ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    label        text NOT NULL DEFAULT '',
    -- SHA-256 of the random secret part: the key has 256 bits of entropy, so a fast hash
    -- is enough and lookups stay cheap; the secret itself is shown once and never stored.
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX carrier_api_keys_carrier_idx ON carrier_api_keys (carrier);

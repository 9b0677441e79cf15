-- Physician receipt confirmation, the 48-hour follow-up and adverse events (issue 7,
-- DESIGN.md §8). Every piece of pending work is a row with a due time that the case_link
-- sweepers claim with FOR UPDATE SKIP LOCKED; nothing waits in memory.

-- One row per SMS link sent to a physician. Only an HMAC-SHA256 of the token (keyed with
-- COLDCHAIN_SECRET_KEY) is stored: the database alone cannot produce a working link.
CREATE TABLE physician_links (
    link_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    purpose         text NOT NULL CHECK (purpose IN ('receipt', 'followup')),
    shipment_id     bigint NOT NULL REFERENCES shipments,
    physician_id    bigint NOT NULL REFERENCES physicians,
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    -- Replaced by a newer link that staff re-sent (e.g. to a corrected mobile number).
    revoked_at      timestamptz,
    notification_id bigint REFERENCES notifications,
    CHECK (expires_at > created_at)
);
CREATE INDEX physician_links_shipment_idx ON physician_links (shipment_id, purpose);

-- A delivered shipment whose physician has been asked to confirm receipt. The sweeper
-- creates it (with the link and the SMS) for delivered shipments that have none.
CREATE TABLE receipt_requests (
    shipment_id  bigint PRIMARY KEY REFERENCES shipments,
    physician_id bigint NOT NULL REFERENCES physicians,
    delivered_at timestamptz NOT NULL,
    requested_at timestamptz NOT NULL,
    -- No confirmation by then: alert logistics ("left with the security guard on Friday").
    confirm_by   timestamptz NOT NULL,
    escalated_at timestamptz,
    alert_id     bigint REFERENCES alerts,
    confirmed_at timestamptz
);
CREATE INDEX receipt_requests_unconfirmed_idx ON receipt_requests (confirm_by)
    WHERE confirmed_at IS NULL AND escalated_at IS NULL;

-- The physician's signed receipt record (21 CFR 11.50: printed name, date and time,
-- meaning). record_sha256 is the SHA-256 of the canonical JSON in `record`, which holds
-- every field below and the signature manifestation: the signature is bound to it (11.70).
CREATE TABLE receipt_confirmations (
    confirmation_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id       bigint NOT NULL UNIQUE REFERENCES shipments,
    link_id           bigint NOT NULL UNIQUE REFERENCES physician_links,
    received_at       timestamptz NOT NULL,
    received_by       text NOT NULL CHECK (length(btrim(received_by)) BETWEEN 1 AND 200),
    package_intact    boolean NOT NULL,
    package_note      text CHECK (length(package_note) <= 2000),
    indicator_status  text NOT NULL CHECK (indicator_status IN ('ok', 'alarm', 'none')),
    indicator_note    text CHECK (length(indicator_note) <= 2000),
    storage_confirmed boolean NOT NULL,
    stored_at         timestamptz,
    signer_name       text NOT NULL CHECK (length(btrim(signer_name)) BETWEEN 1 AND 200),
    signature_meaning text NOT NULL,
    signed_at         timestamptz NOT NULL,
    record            jsonb NOT NULL,
    record_sha256     text NOT NULL CHECK (record_sha256 ~ '^[0-9a-f]{64}$'),
    CHECK (storage_confirmed = (stored_at IS NOT NULL))
);

-- The follow-up after receipt: due 48 h (COLDCHAIN_FOLLOWUP_AFTER_HOURS) after the
-- confirmation. next_action_at is when the sweeper next acts: the first SMS, a reminder,
-- or the overdue alert; NULL once nothing more is scheduled.
CREATE TABLE followups (
    followup_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id          bigint NOT NULL UNIQUE REFERENCES shipments,
    physician_id         bigint NOT NULL REFERENCES physicians,
    due_at               timestamptz NOT NULL,
    state                text NOT NULL DEFAULT 'scheduled'
                         CHECK (state IN ('scheduled', 'sent', 'overdue', 'completed')),
    next_action_at       timestamptz,
    reminders_sent       integer NOT NULL DEFAULT 0 CHECK (reminders_sent >= 0),
    sent_at              timestamptz,
    overdue_at           timestamptz,
    alert_id             bigint REFERENCES alerts,
    completed_at         timestamptz,
    safe_receipt         boolean,
    stored_correctly     boolean,
    administration       text CHECK (administration IN ('administered', 'planned', 'not_planned')),
    administration_date  date,
    adverse_event        boolean,
    comments             text CHECK (length(comments) <= 4000),
    signer_name          text,
    signature_meaning    text,
    response             jsonb,
    response_sha256      text CHECK (response_sha256 ~ '^[0-9a-f]{64}$'),
    created_at           timestamptz NOT NULL,
    CHECK ((state = 'completed') = (completed_at IS NOT NULL)),
    CHECK (completed_at IS NULL OR (response IS NOT NULL AND response_sha256 IS NOT NULL))
);
CREATE INDEX followups_next_action_idx ON followups (next_action_at)
    WHERE next_action_at IS NOT NULL;

-- Adverse events (ICH E2A seriousness criteria), reported from the follow-up form or by
-- staff. Reporting to the manufacturer and to the regulator each has a due date counted
-- in calendar days from aware_at (day zero); next_check_at drives reminders and the
-- overdue alert.
CREATE TABLE adverse_events (
    adverse_event_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id                  bigint NOT NULL REFERENCES cases,
    shipment_id              bigint NOT NULL REFERENCES shipments,
    followup_id              bigint REFERENCES followups,
    onset_date               date NOT NULL,
    description              text NOT NULL CHECK (length(btrim(description)) BETWEEN 1 AND 4000),
    seriousness              text[] NOT NULL DEFAULT '{}' CHECK (seriousness <@ ARRAY[
        'death', 'life_threatening', 'hospitalisation', 'disability', 'congenital_anomaly',
        'other_medically_important']::text[]),
    serious                  boolean GENERATED ALWAYS AS (cardinality(seriousness) > 0) STORED,
    outcome                  text NOT NULL CHECK (outcome IN (
        'recovered', 'recovering', 'not_recovered', 'recovered_with_sequelae', 'fatal',
        'unknown')),
    reporter                 text NOT NULL CHECK (length(btrim(reporter)) BETWEEN 1 AND 200),
    source                   text NOT NULL CHECK (source IN ('followup', 'staff')),
    aware_at                 timestamptz NOT NULL,
    manufacturer_due_at      timestamptz NOT NULL,
    regulator_due_at         timestamptz NOT NULL,
    manufacturer_reported_at timestamptz,
    manufacturer_reported_by text,
    manufacturer_reference   text,
    regulator_reported_at    timestamptz,
    regulator_reported_by    text,
    regulator_reference      text,
    -- 0 nothing sent, 1 reminder alert raised, 2 overdue alert raised.
    manufacturer_stage       smallint NOT NULL DEFAULT 0 CHECK (manufacturer_stage BETWEEN 0 AND 2),
    regulator_stage          smallint NOT NULL DEFAULT 0 CHECK (regulator_stage BETWEEN 0 AND 2),
    next_check_at            timestamptz,
    created_at               timestamptz NOT NULL
);
CREATE INDEX adverse_events_case_idx ON adverse_events (case_id, onset_date);
CREATE INDEX adverse_events_next_check_idx ON adverse_events (next_check_at)
    WHERE next_check_at IS NOT NULL;

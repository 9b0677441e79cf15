-- On-call people, schedules and escalation policies; escalation state of alerts, grouping,
-- silences and the GDP excursion notice (DESIGN.md §7, EU GDP ch. 9). docs/alerts.md
-- describes the configuration these tables hold.

CREATE TABLE oncall_people (
    person_id  text PRIMARY KEY CHECK (person_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    phone_e164 text NOT NULL CHECK (phone_e164 ~ '^\+[1-9][0-9]{6,14}$'),
    time_zone  text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    position   integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Layers (rotations) are validated as a whole by alerts.oncall_config before they are
-- stored; resolution reads them back as one document per schedule.
CREATE TABLE oncall_schedules (
    schedule_id text PRIMARY KEY CHECK (schedule_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name        text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    layers      jsonb NOT NULL CHECK (jsonb_typeof(layers) = 'array'),
    position    integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oncall_overrides (
    override_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id text NOT NULL REFERENCES oncall_schedules ON DELETE CASCADE,
    person_id   text NOT NULL REFERENCES oncall_people ON DELETE CASCADE,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX oncall_overrides_schedule_idx ON oncall_overrides (schedule_id, ends_at);

CREATE TABLE escalation_policies (
    policy_id       text PRIMARY KEY CHECK (policy_id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    name            text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    steps           jsonb NOT NULL CHECK (jsonb_typeof(steps) = 'array'),
    repeat          integer NOT NULL DEFAULT 0 CHECK (repeat BETWEEN 0 AND 20),
    ack_timeout_min integer CHECK (ack_timeout_min IS NULL OR ack_timeout_min > 0),
    group_window_s  integer NOT NULL DEFAULT 60 CHECK (group_window_s BETWEEN 0 AND 3600),
    position        integer NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Which policy an alert follows: the most specific matching route wins (see docs).
CREATE TABLE escalation_routes (
    route_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position   integer NOT NULL,
    policy_id  text NOT NULL REFERENCES escalation_policies ON DELETE CASCADE,
    severities text[] CHECK (severities <@ ARRAY['notification','low','medium','high','critical']),
    lane       text,
    customer   text
);

-- Who the shipment is for and who distributes it: routing and the GDP excursion notice.
ALTER TABLE shipments ADD COLUMN customer text;
ALTER TABLE shipments ADD COLUMN distributor_name text;
ALTER TABLE shipments ADD COLUMN distributor_phone text
    CHECK (distributor_phone IS NULL OR distributor_phone ~ '^\+[1-9][0-9]{6,14}$');
ALTER TABLE shipments ADD COLUMN distributor_email text
    CHECK (distributor_email IS NULL OR distributor_email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$');

-- The page text of the alert's latest trigger, so escalation steps can send it later;
-- and the alert whose pages speak for this one (grouping window).
ALTER TABLE alerts ADD COLUMN page_message text;
ALTER TABLE alerts ADD COLUMN group_alert_id bigint REFERENCES alerts;
CREATE INDEX alerts_group_idx ON alerts (group_alert_id) WHERE group_alert_id IS NOT NULL;

-- One escalation per paging alert. The row is the work: a sweeper claims rows whose
-- next_step_at is due (FOR UPDATE SKIP LOCKED), sends step (step_index, repeat) and moves
-- the row on in the same transaction, so a restart neither loses nor repeats a step.
CREATE TABLE alert_escalations (
    alert_id       bigint PRIMARY KEY REFERENCES alerts,
    policy_id      text NOT NULL,
    state          text NOT NULL DEFAULT 'active'
                   CHECK (state IN ('active', 'acknowledged', 'exhausted', 'done')),
    step_index     integer NOT NULL DEFAULT 0 CHECK (step_index >= 0),
    repeat         integer NOT NULL DEFAULT 0 CHECK (repeat >= 0),
    next_step_at   timestamptz,
    last_step      integer,
    last_repeat    integer,
    last_paged_at  timestamptz,
    pages          integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((state IN ('active', 'acknowledged')) OR next_step_at IS NULL)
);
CREATE INDEX alert_escalations_due_idx ON alert_escalations (next_step_at)
    WHERE next_step_at IS NOT NULL;

-- Which escalation step a page belongs to (a failed page of the current step moves the
-- escalation on) and the person it was for.
ALTER TABLE notifications ADD COLUMN escalation_step integer;
ALTER TABLE notifications ADD COLUMN escalation_repeat integer;
ALTER TABLE notifications ADD COLUMN person_id text;

CREATE TABLE alert_silences (
    silence_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id bigint REFERENCES shipments,
    rule_id     text CHECK (rule_id IS NULL OR length(btrim(rule_id)) BETWEEN 1 AND 100),
    reason      text NOT NULL CHECK (length(btrim(reason)) BETWEEN 3 AND 2000),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expired_at  timestamptz,
    expired_by  text,
    CHECK (shipment_id IS NOT NULL OR rule_id IS NOT NULL),
    CHECK (ends_at > starts_at)
);
CREATE INDEX alert_silences_active_idx ON alert_silences (ends_at) WHERE expired_at IS NULL;

-- EU GDP 9.x: a confirmed excursion is reported to the distributor and the recipient,
-- once per shipment and party. The worker turns pending rows into notifications.
CREATE TABLE gdp_notices (
    gdp_notice_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id     bigint NOT NULL REFERENCES shipments,
    party           text NOT NULL CHECK (party IN ('distributor', 'recipient')),
    alert_id        bigint REFERENCES alerts,
    confirmed_by    text NOT NULL,
    confirmed_at    timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'queued', 'no_contact')),
    notification_id bigint REFERENCES notifications,
    UNIQUE (shipment_id, party)
);
CREATE INDEX gdp_notices_pending_idx ON gdp_notices (gdp_notice_id) WHERE status = 'pending';

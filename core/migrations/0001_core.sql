-- Core schema: devices, drug profiles, cases, shipments, readings, excursions, alerts,
-- notifications and the append-only audit log. Later migrations extend it.

CREATE TABLE devices (
    device_id      text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    carrier        text NOT NULL CHECK (carrier ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    interval_min   integer NOT NULL DEFAULT 10 CHECK (interval_min BETWEEN 1 AND 1440),
    active         boolean NOT NULL DEFAULT true,
    firmware       text,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz
);

CREATE TABLE drug_profiles (
    profile_id   text PRIMARY KEY,
    name         text NOT NULL,
    definition   jsonb NOT NULL,
    content_hash text NOT NULL,
    source       text NOT NULL,
    loaded_at    timestamptz NOT NULL DEFAULT now()
);

-- Named Patient Program steps, in their permitted order (DESIGN.md §1).
CREATE TABLE cases (
    case_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_ref   text NOT NULL UNIQUE,
    step       text NOT NULL DEFAULT 'request' CHECK (step IN (
        'request', 'review', 'eligibility_pricing', 'physician_authorization',
        'regulatory_filing', 'prepayment', 'sourcing_serialization', 'shipping',
        'delivery_follow_up', 'adverse_event_reporting', 'closed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shipments (
    shipment_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_ref         text NOT NULL UNIQUE,
    case_id              bigint REFERENCES cases,
    profile_id           text NOT NULL REFERENCES drug_profiles,
    lane                 text,
    origin_name          text NOT NULL,
    origin_lat           double precision CHECK (origin_lat BETWEEN -90 AND 90),
    origin_lon           double precision CHECK (origin_lon BETWEEN -180 AND 180),
    destination_name     text NOT NULL,
    destination_lat      double precision CHECK (destination_lat BETWEEN -90 AND 90),
    destination_lon      double precision CHECK (destination_lon BETWEEN -180 AND 180),
    destination_tz       text NOT NULL DEFAULT 'UTC',
    status               text NOT NULL DEFAULT 'planned'
                         CHECK (status IN ('planned', 'in_transit', 'delivered', 'cancelled')),
    departed_at          timestamptz,
    expected_delivery_at timestamptz,
    delivered_at         timestamptz,
    -- Set by ingest when readings arrive, cleared by the monitor once it has evaluated:
    -- the earliest device time that still needs (re-)evaluation.
    evaluate_from        timestamptz,
    -- The newest device time covered by the last evaluation: readings older than this
    -- arriving later are store-and-forward history, and what they reveal is retrospective.
    evaluated_through    timestamptz,
    evaluated_at         timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_evaluate_idx ON shipments (evaluate_from) WHERE evaluate_from IS NOT NULL;

-- Which logger rides with which shipment, and when. A device is in at most one
-- shipment at any instant (enforced below); a shipment may carry several probes.
CREATE TABLE shipment_devices (
    shipment_id    bigint NOT NULL REFERENCES shipments ON DELETE CASCADE,
    device_id      text NOT NULL REFERENCES devices,
    assigned_from  timestamptz NOT NULL,
    assigned_until timestamptz,
    PRIMARY KEY (shipment_id, device_id, assigned_from),
    CHECK (assigned_until IS NULL OR assigned_until > assigned_from)
);
CREATE INDEX shipment_devices_device_idx ON shipment_devices (device_id, assigned_from);

CREATE FUNCTION shipment_devices_no_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('shipment_devices:' || NEW.device_id));
    IF EXISTS (
        SELECT 1 FROM shipment_devices d
        WHERE d.device_id = NEW.device_id
          AND (d.shipment_id, d.assigned_from) <> (NEW.shipment_id, NEW.assigned_from)
          AND tstzrange(d.assigned_from, d.assigned_until) && tstzrange(NEW.assigned_from, NEW.assigned_until)
    ) THEN
        RAISE EXCEPTION 'device % is already assigned to another shipment during %',
            NEW.device_id, tstzrange(NEW.assigned_from, NEW.assigned_until)
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER shipment_devices_no_overlap BEFORE INSERT OR UPDATE ON shipment_devices
    FOR EACH ROW EXECUTE FUNCTION shipment_devices_no_overlap();

-- Readings: the contract columns of DESIGN.md §4; one row per (device_id, ts).
CREATE TABLE readings (
    device_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    recv_ts     timestamptz NOT NULL DEFAULT now(),
    seq         bigint,
    temp_c      double precision,
    rh_pct      double precision,
    lat         double precision,
    lon         double precision,
    battery_pct double precision,
    light_lux   double precision,
    shock_g     double precision,
    status      text NOT NULL DEFAULT 'ok',
    shipment_id bigint,
    clock_ahead boolean NOT NULL DEFAULT false,
    PRIMARY KEY (device_id, ts),
    CHECK (temp_c IS NOT NULL OR status <> 'ok')
);
CREATE INDEX readings_shipment_ts_idx ON readings (shipment_id, ts) WHERE shipment_id IS NOT NULL;

-- A hypertable when TimescaleDB is loaded; a plain table otherwise (DESIGN.md §4).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM create_hypertable('readings', 'ts', chunk_time_interval => interval '1 day');
    END IF;
END $$;

-- Same key, different values: the first value is kept in readings, the rest land here.
CREATE TABLE reading_conflicts (
    conflict_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   text NOT NULL,
    ts          timestamptz NOT NULL,
    recv_ts     timestamptz NOT NULL DEFAULT now(),
    reading     jsonb NOT NULL
);
CREATE INDEX reading_conflicts_device_idx ON reading_conflicts (device_id, ts);

CREATE TABLE device_latest (
    device_id     text PRIMARY KEY REFERENCES devices,
    ts            timestamptz NOT NULL,
    recv_ts       timestamptz NOT NULL,
    temp_c        double precision,
    status        text NOT NULL,
    battery_pct   double precision,
    lat           double precision,
    lon           double precision,
    position_ts   timestamptz,
    shipment_id   bigint REFERENCES shipments
);

CREATE TABLE rejected_messages (
    rejected_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    source      text NOT NULL DEFAULT 'mqtt' CHECK (source IN ('mqtt', 'http')),
    topic       text,
    device_id   text,
    payload     bytea NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX rejected_messages_received_idx ON rejected_messages (received_at);

CREATE TABLE excursions (
    excursion_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id   bigint NOT NULL REFERENCES shipments,
    direction     text NOT NULL CHECK (direction IN ('above', 'below')),
    started_at    timestamptz NOT NULL,
    ended_at      timestamptz,
    duration_min  double precision NOT NULL,
    peak_c        double precision NOT NULL,
    retrospective boolean NOT NULL DEFAULT false,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shipment_id, direction, started_at)
);

-- Each rule alarm found by the monitor, once: re-evaluating finds the same alarm again
-- and must not page again.
CREATE TABLE alarms (
    alarm_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id   bigint NOT NULL REFERENCES shipments,
    rule_id       text NOT NULL,
    severity      text NOT NULL,
    started_at    timestamptz NOT NULL,
    alarmed_at    timestamptz NOT NULL,
    retrospective boolean NOT NULL DEFAULT false,
    detected_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (shipment_id, rule_id, started_at)
);

CREATE TABLE alerts (
    alert_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id     bigint REFERENCES shipments,
    rule_id         text NOT NULL,
    severity        text NOT NULL CHECK (severity IN ('notification', 'low', 'medium', 'high', 'critical')),
    state           text NOT NULL DEFAULT 'triggered'
                    CHECK (state IN ('triggered', 'acknowledged', 'resolved')),
    summary         text NOT NULL,
    triggered_at    timestamptz NOT NULL,
    condition_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text,
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
-- One open alert per (shipment, rule); a new trigger upgrades it in place.
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (shipment_id, rule_id) WHERE state <> 'resolved';
CREATE INDEX alerts_state_idx ON alerts (state, triggered_at);

-- Every page is a row written before it is sent and updated after (DESIGN.md §7).
CREATE TABLE notifications (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint REFERENCES alerts,
    channel         text NOT NULL CHECK (channel IN ('outbox', 'sms', 'voice')),
    recipient       text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'sent', 'delivered', 'failed')),
    due_at          timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    provider_ref    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_due_idx ON notifications (due_at) WHERE status IN ('pending', 'sending');

-- Append-only, hash-chained audit trail (21 CFR 11.10(e)): each row's hash covers its
-- content and the previous row's hash, so an edit anywhere breaks every later link.
CREATE SEQUENCE audit_log_seq;
CREATE TABLE audit_log (
    audit_id    bigint PRIMARY KEY,  -- assigned by the trigger, in chain order
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    entity_type text NOT NULL,
    entity_id   text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    prev_hash   bytea,
    row_hash    bytea NOT NULL
);

CREATE FUNCTION audit_log_row_hash(prev bytea, at timestamptz, actor text, action text,
                                   entity_type text, entity_id text, details jsonb)
RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(coalesce(prev, '\x'::bytea) || convert_to(
        jsonb_build_array(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                          actor, action, entity_type, entity_id, details)::text, 'UTF8'))
$$;

CREATE FUNCTION audit_log_chain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Serialise writers so every row links to exactly one predecessor.
    PERFORM pg_advisory_xact_lock(hashtext('audit_log_chain'));
    NEW.audit_id := nextval('audit_log_seq');
    SELECT row_hash INTO NEW.prev_hash FROM audit_log ORDER BY audit_id DESC LIMIT 1;
    NEW.row_hash := audit_log_row_hash(NEW.prev_hash, NEW.at, NEW.actor, NEW.action,
                                       NEW.entity_type, NEW.entity_id, NEW.details);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

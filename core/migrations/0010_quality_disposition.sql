-- QA disposition of shipments (issue 5): a quality state beside the logistics status,
-- assessments that snapshot the evidence, per-alarm assessments and signed dispositions.
-- 21 CFR 11.10(e) audit trail, 11.50 signature manifestation, 11.70 signature/record
-- linking: every table here is append-only; a later row supersedes, none is ever changed.

-- shipments.status stays the logistics status (planned, in_transit, delivered, cancelled).
ALTER TABLE shipments ADD COLUMN quality_state text NOT NULL DEFAULT 'in_transit'
    CHECK (quality_state IN ('in_transit', 'delivered', 'under_assessment', 'released',
                             'released_shortened_expiry', 'rejected'));
UPDATE shipments SET quality_state = 'delivered' WHERE status = 'delivered';

-- Whoever records the delivery (geofence, API, case link), the quality state follows.
CREATE FUNCTION shipments_quality_on_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'delivered' AND NEW.quality_state = 'in_transit' THEN
        NEW.quality_state := 'delivered';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER shipments_quality_on_delivery BEFORE INSERT OR UPDATE OF status ON shipments
    FOR EACH ROW EXECUTE FUNCTION shipments_quality_on_delivery();

CREATE FUNCTION quality_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- The start of a QA assessment, with what the monitor proposed and why, as it stood then.
CREATE TABLE quality_assessments (
    assessment_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id      bigint NOT NULL REFERENCES shipments,
    started_at       timestamptz NOT NULL,
    started_by       text NOT NULL,
    profile_id       text NOT NULL,
    profile_hash     text NOT NULL,
    proposed_verdict text NOT NULL CHECK (proposed_verdict IN ('accept', 'review', 'reject')),
    evidence         jsonb NOT NULL
);
CREATE INDEX quality_assessments_shipment_idx ON quality_assessments (shipment_id, assessment_id);

-- What an alarm means for the product, in QA's words; the newest row per alarm counts.
CREATE TABLE alarm_assessments (
    alarm_assessment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id            bigint NOT NULL REFERENCES alarms,
    impact              text NOT NULL
                        CHECK (impact IN ('no_impact', 'expiry_shortened', 'product_affected')),
    note                text NOT NULL CHECK (length(btrim(note)) > 0),
    assessed_by         text NOT NULL,
    assessed_at         timestamptz NOT NULL
);
CREATE INDEX alarm_assessments_alarm_idx ON alarm_assessments (alarm_id, alarm_assessment_id);

-- QA's signed decision. One per assessment; a new decision needs a new assessment and
-- names the disposition it supersedes.
CREATE TABLE dispositions (
    disposition_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id      bigint NOT NULL REFERENCES shipments,
    assessment_id    bigint NOT NULL UNIQUE REFERENCES quality_assessments,
    decision         text NOT NULL
                     CHECK (decision IN ('released', 'released_shortened_expiry', 'rejected')),
    new_expiry_date  date,
    proposed_verdict text NOT NULL CHECK (proposed_verdict IN ('accept', 'review', 'reject')),
    signer_user_id   bigint NOT NULL REFERENCES staff_users,
    signer_email     text NOT NULL,
    printed_name     text NOT NULL CHECK (length(btrim(printed_name)) > 0),
    meaning          text NOT NULL CHECK (length(btrim(meaning)) > 0),
    reason           text NOT NULL CHECK (length(btrim(reason)) > 0),
    signed_at        timestamptz NOT NULL,
    supersedes       bigint UNIQUE REFERENCES dispositions,
    CHECK ((decision = 'released_shortened_expiry') = (new_expiry_date IS NOT NULL))
);
CREATE INDEX dispositions_shipment_idx ON dispositions (shipment_id, disposition_id);

-- The database refuses what the service refuses: a signer who is not an active QA user,
-- an assessment of another shipment, and a release while any alarm is unassessed or
-- assessed as having affected the product.
CREATE FUNCTION dispositions_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM staff_users
                   WHERE user_id = NEW.signer_user_id AND role = 'qa' AND active) THEN
        RAISE EXCEPTION 'only an active qa user may sign a disposition'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM quality_assessments
                   WHERE assessment_id = NEW.assessment_id AND shipment_id = NEW.shipment_id) THEN
        RAISE EXCEPTION 'assessment % is not of shipment %', NEW.assessment_id, NEW.shipment_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.decision <> 'rejected' AND EXISTS (
        SELECT 1 FROM alarms a
        WHERE a.shipment_id = NEW.shipment_id
          AND NOT EXISTS (SELECT 1 FROM alarm_assessments x WHERE x.alarm_id = a.alarm_id)
    ) THEN
        RAISE EXCEPTION 'shipment % has unassessed alarms: release refused', NEW.shipment_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.decision <> 'rejected' AND EXISTS (
        SELECT 1 FROM alarms a
        CROSS JOIN LATERAL (SELECT impact FROM alarm_assessments x WHERE x.alarm_id = a.alarm_id
                            ORDER BY alarm_assessment_id DESC LIMIT 1) newest
        WHERE a.shipment_id = NEW.shipment_id AND newest.impact = 'product_affected'
    ) THEN
        RAISE EXCEPTION 'shipment % has an alarm assessed as product_affected: release refused',
            NEW.shipment_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER dispositions_check BEFORE INSERT ON dispositions
    FOR EACH ROW EXECUTE FUNCTION dispositions_check();

-- The quality state follows the append-only rows, so it can never disagree with them.
CREATE FUNCTION quality_state_under_assessment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE shipments SET quality_state = 'under_assessment' WHERE shipment_id = NEW.shipment_id;
    RETURN NULL;
END $$;
CREATE TRIGGER quality_assessments_state AFTER INSERT ON quality_assessments
    FOR EACH ROW EXECUTE FUNCTION quality_state_under_assessment();

CREATE FUNCTION quality_state_decided() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE shipments SET quality_state = NEW.decision WHERE shipment_id = NEW.shipment_id;
    RETURN NULL;
END $$;
CREATE TRIGGER dispositions_state AFTER INSERT ON dispositions
    FOR EACH ROW EXECUTE FUNCTION quality_state_decided();

CREATE TRIGGER quality_assessments_append_only BEFORE UPDATE OR DELETE ON quality_assessments
    FOR EACH ROW EXECUTE FUNCTION quality_refuse_change();
CREATE TRIGGER quality_assessments_no_truncate BEFORE TRUNCATE ON quality_assessments
    FOR EACH STATEMENT EXECUTE FUNCTION quality_refuse_change();
CREATE TRIGGER alarm_assessments_append_only BEFORE UPDATE OR DELETE ON alarm_assessments
    FOR EACH ROW EXECUTE FUNCTION quality_refuse_change();
CREATE TRIGGER alarm_assessments_no_truncate BEFORE TRUNCATE ON alarm_assessments
    FOR EACH STATEMENT EXECUTE FUNCTION quality_refuse_change();
CREATE TRIGGER dispositions_append_only BEFORE UPDATE OR DELETE ON dispositions
    FOR EACH ROW EXECUTE FUNCTION quality_refuse_change();
CREATE TRIGGER dispositions_no_truncate BEFORE TRUNCATE ON dispositions
    FOR EACH STATEMENT EXECUTE FUNCTION quality_refuse_change();

-- Route deviation (monitor.route): a shipment with a corridor is watched against its planned
-- route, origin → waypoints ([[lat, lon], ...], e.g. the gateway airports) → destination.
-- NULL corridor: not watched (a great circle is no road; an operator opts in per lane).
ALTER TABLE shipments ADD COLUMN route_corridor_km double precision
    CHECK (route_corridor_km > 0 AND route_corridor_km <= 1000);
ALTER TABLE shipments ADD COLUMN route_waypoints jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(route_waypoints) = 'array');

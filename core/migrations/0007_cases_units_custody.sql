-- Case workflow, serialized units and chain of custody (issue 7; docs/case-link.md).

-- Regulatory filing is a step only where the destination requires it; a case that needs
-- none goes from physician authorization straight to prepayment.
ALTER TABLE cases ADD COLUMN regulatory_filing_required boolean NOT NULL DEFAULT true;
CREATE INDEX cases_step_idx ON cases (step, case_id);

-- Every change of a case's step, in order (21 CFR 11.10(f): the permitted sequence is
-- enforced by case_link.workflow; this table records what happened). from_step is NULL
-- when a case is registered directly at a step.
CREATE TABLE case_transitions (
    transition_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id       bigint NOT NULL REFERENCES cases,
    from_step     text,
    to_step       text NOT NULL,
    actor         text NOT NULL,
    at            timestamptz NOT NULL,
    note          text CHECK (note IS NULL OR length(note) <= 2000)
);
CREATE INDEX case_transitions_case_idx ON case_transitions (case_id, transition_id);

-- DSCSA product identifiers. The same unit may travel on several shipments over time
-- (legs), so a unit is stored once and linked to each shipment that carried it.
CREATE TABLE serialized_units (
    unit_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gtin       text NOT NULL CHECK (gtin ~ '^[0-9]{14}$'),
    serial     text NOT NULL CHECK (length(serial) BETWEEN 1 AND 20),
    lot        text NOT NULL CHECK (length(lot) BETWEEN 1 AND 20),
    expiry     date NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gtin, serial)
);

CREATE TABLE shipment_units (
    shipment_id bigint NOT NULL REFERENCES shipments,
    unit_id     bigint NOT NULL REFERENCES serialized_units,
    added_at    timestamptz NOT NULL,
    added_by    text NOT NULL,
    PRIMARY KEY (shipment_id, unit_id)
);
CREATE INDEX shipment_units_unit_idx ON shipment_units (unit_id);

-- Chain of custody: append-only, like audit_log.
CREATE TABLE custody_events (
    custody_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shipment_id      bigint NOT NULL REFERENCES shipments,
    event_type       text NOT NULL CHECK (event_type IN (
        'packed', 'handed_to_carrier', 'departed', 'arrived', 'customs_released',
        'delivered', 'received')),
    at               timestamptz NOT NULL,
    place_name       text NOT NULL CHECK (length(btrim(place_name)) BETWEEN 1 AND 200),
    place_lat        double precision CHECK (place_lat BETWEEN -90 AND 90),
    place_lon        double precision CHECK (place_lon BETWEEN -180 AND 180),
    place_tz         text NOT NULL DEFAULT 'UTC',
    actor            text NOT NULL CHECK (length(btrim(actor)) BETWEEN 1 AND 320),
    note             text CHECK (note IS NULL OR length(note) <= 2000),
    recorded_at      timestamptz NOT NULL,
    CHECK ((place_lat IS NULL) = (place_lon IS NULL))
);
CREATE INDEX custody_events_shipment_idx ON custody_events (shipment_id, at);

CREATE FUNCTION case_link_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER custody_events_no_update_delete BEFORE UPDATE OR DELETE ON custody_events
    FOR EACH ROW EXECUTE FUNCTION case_link_refuse_change();
CREATE TRIGGER custody_events_no_truncate BEFORE TRUNCATE ON custody_events
    FOR EACH STATEMENT EXECUTE FUNCTION case_link_refuse_change();

-- Transitions are history too.
CREATE TRIGGER case_transitions_no_update_delete BEFORE UPDATE OR DELETE ON case_transitions
    FOR EACH ROW EXECUTE FUNCTION case_link_refuse_change();

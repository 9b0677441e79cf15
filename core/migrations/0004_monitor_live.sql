-- Live monitoring beyond temperature (issue 5): geofence arrival, who marked a shipment
-- delivered, and what the monitor had seen when it found each alarm.

-- Arrival geofence around the destination; NULL means the monitor's default
-- (monitor.live.ARRIVAL_RADIUS_KM). A rural clinic may need more than a city hospital.
ALTER TABLE shipments ADD COLUMN arrival_radius_km double precision
    CHECK (arrival_radius_km > 0 AND arrival_radius_km <= 100);
-- 'monitor' for a geofence arrival, else the person or system that recorded delivery.
ALTER TABLE shipments ADD COLUMN delivered_by text;
-- The sweep visits in-transit shipments every poll.
CREATE INDEX shipments_in_transit_idx ON shipments (shipment_id) WHERE status = 'in_transit';

-- The newest device time the evaluation that found an alarm had seen. A single-rule alert
-- closes by itself only when the reading back in range is newer than this, i.e. the monitor
-- saw the run open and then saw it end; a run that was already over when found (late,
-- store-and-forward history) is news for a human and stays open. NULL: found before this
-- column existed; never closed automatically.
ALTER TABLE alarms ADD COLUMN seen_through timestamptz;

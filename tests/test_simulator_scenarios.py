"""Simulated loggers without services: every shipped scenario, every fault, determinism."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from core.clock import isoformat_utc
from ingest.parser import PayloadError, parse_payload, parse_topic
from simulators.device import SimulatedMessage, plan_route
from simulators.fleet import fleet_messages, fleet_readings
from simulators.publisher import write_jsonl
from simulators.routes import Point, distance_km
from simulators.scenario import Scenario, ShipmentPlan, load_scenario, shipped_scenarios

PREFIX = "coldchain/v1"
FAULT_SCENARIOS = {
    "refrigerant_exhaustion": "refrigerant-exhaustion",
    "over_conditioned": "over-conditioned",
    "door_open": "door-open",
    "tarmac_delay": "tarmac-delay",
    "customs_delay": "customs-delay",
    "route_deviation": "route-deviation",
    "wrong_delivery": "wrong-delivery",
    "offline": "offline-store-and-forward",
    "duplicate_resend": "duplicate-resend",
    "clock_reset": "clock-reset",
    "clock_skew": "clock-skew",
    "sensor_error": "sensor-error",
    "battery_drain": "battery-drain",
    "malformed": "malformed-payloads",
    "reboot": "reboot-zero-gps",
}


def run(name: str, seed: int | None = None) -> tuple[Scenario, list[SimulatedMessage]]:
    scenario = load_scenario(name)
    seed = scenario.seed if seed is None else seed
    return scenario, fleet_messages(scenario, scenario.shipments, scenario.start, seed)


def without_events(scenario: Scenario) -> tuple[Scenario, list[SimulatedMessage]]:
    """The same scenario with every event removed: the control run."""
    plans = [plan.model_copy(update={"events": []}) for plan in scenario.shipments]
    control = scenario.model_copy(update={"shipments": plans})
    return control, fleet_messages(control, plans, control.start, control.seed)


def readings(messages: list[SimulatedMessage], device: str | None = None) -> list[dict[str, Any]]:
    """Every reading the valid messages carry, as plain dicts (batches flattened)."""
    out = []
    for message in messages:
        if not message.valid or (device and message.device != device):
            continue
        document = json.loads(message.payload)
        for item in document.get("readings", [document]):
            out.append({"device_id": document["device_id"], **item, "_at": message.at})
    return out


def minute_of(scenario: Scenario, ts: str) -> float:
    return (datetime.fromisoformat(ts) - scenario.start).total_seconds() / 60


def at_minute(scenario: Scenario, message: SimulatedMessage) -> float:
    return (message.at - scenario.start).total_seconds() / 60


# -- the protocol ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_every_payload_meets_the_device_protocol(name: str) -> None:
    """ingest's own parser accepts every payload, except those corrupted on purpose."""
    scenario, messages = run(name)
    assert messages
    malformed = 0
    for message in messages:
        topic = f"{PREFIX}/{message.carrier}/{message.device}/telemetry"
        assert parse_topic(topic, PREFIX).device_id == message.device
        if message.valid:
            parsed = parse_payload(message.payload.encode(), topic_device_id=message.device)
            assert len(parsed) == message.readings >= 1
        else:
            malformed += 1
            with pytest.raises(PayloadError):
                parse_payload(message.payload.encode(), topic_device_id=message.device)
    wants_malformed = any(e.type == "malformed" for plan in scenario.shipments for e in plan.events)
    assert (malformed > 0) == wants_malformed
    # Send times never go backwards: the order the fleet publishes in.
    assert [m.at for m in messages] == sorted(m.at for m in messages)


def test_every_scenario_names_a_known_drug_profile_lane_and_packaging() -> None:
    from monitor.profiles import catalog
    from simulators.routes import LANES
    from simulators.thermal import PACKAGING

    profiles = catalog()
    for name, scenario in shipped_scenarios().items():
        for plan in scenario.shipments:
            assert plan.profile in profiles, (name, plan.profile)
            assert plan.lane in LANES and plan.packaging in PACKAGING


def test_lanes_reach_four_continents_from_us_hubs() -> None:
    from simulators.routes import LANES

    assert len(LANES) >= 8
    continents = {lane.destination.tz.split("/")[0] for lane in LANES.values()}
    continents |= {
        "South America"
        for lane in LANES.values()
        if lane.destination.lat < -15 and lane.destination.lon < -30
    }
    assert len(continents - {"America"}) >= 4  # Europe, Asia, Africa, Australia + S. America
    assert all(lane.origin.tz.startswith("America/") for lane in LANES.values())
    assert len({lane.destination.tz for lane in LANES.values()}) >= 8  # countries


def test_every_fault_has_a_shipped_scenario() -> None:
    from simulators.faults import EVENT_TYPES

    assert set(FAULT_SCENARIOS) == set(EVENT_TYPES)
    for event, name in FAULT_SCENARIOS.items():
        plans = load_scenario(name).shipments
        assert any(e.type == event for plan in plans for e in plan.events), name


def test_same_seed_same_bytes_other_seed_differs() -> None:
    scenario = load_scenario("mixed-faults")

    def jsonl(seed: int) -> str:
        out = io.StringIO()
        write_jsonl(fleet_messages(scenario, scenario.shipments, scenario.start, seed), PREFIX, out)
        return out.getvalue()

    first, again, other = jsonl(7), jsonl(7), jsonl(8)
    assert first == again
    assert first != other
    line = json.loads(first.splitlines()[0])
    assert set(line) == {"topic", "payload"} and isinstance(line["payload"], str)


def test_walking_skeleton_keeps_the_demo_story() -> None:
    scenario = load_scenario("walking-skeleton")
    messages = fleet_readings(scenario, scenario.shipments, scenario.start, scenario.seed)
    assert len(messages) == 4 * (12 * 60 // 5 + 1)
    assert {m.kind for m in messages} == {"reading"}
    temps = {
        plan.device: [
            (minute_of(scenario, r["ts"]), r["temp_c"]) for r in readings(messages, plan.device)
        ]
        for plan in scenario.shipments
    }
    for calm in ("LOG-SK-001", "LOG-SK-003"):
        assert all(2.0 <= t <= 8.0 for _, t in temps[calm])
    warm = temps["LOG-SK-002"]
    # Above 8 °C from the first interval and for well over 30 minutes: high-30m trips by ~40.
    assert all(t > 8.0 for m, t in warm if 5 <= m <= 45)
    # One excursion, shorter than warm-cumulative's 600 min: the demo shows one alert.
    above = [m for m, t in warm if t > 8.0]
    assert above == [5 * i for i in range(1, len(above) + 1)] and len(above) * 5 < 600
    frozen = temps["LOG-SK-004"]
    first_below = min(m for m, t in frozen if t < 0.0)
    assert 20 <= first_below <= 45
    assert all(t >= 2.0 for m, t in frozen if m < 20)


# -- the payload -------------------------------------------------------------------------


def test_refrigerant_exhaustion_is_a_slow_warm_drift() -> None:
    scenario, messages = run("refrigerant-exhaustion")
    spent = readings(messages, "LOG-RX-001")
    warm = [minute_of(scenario, r["ts"]) for r in spent if r["temp_c"] > 8.0]
    assert warm and min(warm) >= 300 + 30  # slow: not a jump at the event
    assert all(2.0 <= r["temp_c"] <= 8.0 for r in spent if minute_of(scenario, r["ts"]) < 300)
    assert all(2.0 <= r["temp_c"] <= 8.0 for r in readings(messages, "LOG-RX-002"))


def test_over_conditioned_packs_freeze_the_payload_then_thaw() -> None:
    scenario, messages = run("over-conditioned")
    series = [(minute_of(scenario, r["ts"]), r["temp_c"]) for r in readings(messages)]
    assert min(m for m, t in series if t < 0.0) <= 60
    assert min(t for _, t in series) < -3.0
    # The packs warm to their melting point after 4 h; the payload recovers.
    assert series[-1][1] > 2.0


def test_door_open_is_a_spike_with_light_and_status() -> None:
    scenario, messages = run("door-open")
    series = readings(messages)
    opened = [r for r in series if r["status"] == "door_open"]
    assert [minute_of(scenario, r["ts"]) for r in opened] == [150, 155, 160]
    assert all(r["light_lux"] > 100 for r in opened)
    assert all(r["light_lux"] == 0 for r in series if r["status"] != "door_open")
    assert max(r["temp_c"] for r in opened) > 8.0
    after = [r["temp_c"] for r in series if minute_of(scenario, r["ts"]) >= 150 + 90]
    assert after and all(t <= 8.0 for t in after)


@pytest.mark.parametrize(
    ("name", "packaging_range"),
    [
        ("walking-skeleton", (2.0, 8.0)),
        ("room-temperature-15-25", (15.0, 25.0)),
        ("frozen-gel", (-25.0, -15.0)),
        ("dry-ice", (-80.0, -60.0)),
        ("ln2-dry-shipper", (-196.0, -150.0)),
    ],
)
def test_storage_classes_hold_their_range_without_faults(
    name: str, packaging_range: tuple[float, float]
) -> None:
    _, messages = without_events(load_scenario(name))
    temps = [r["temp_c"] for r in readings(messages)]
    low, high = packaging_range
    assert temps and all(low <= t <= high for t in temps), (min(temps), max(temps))


# -- the journey -------------------------------------------------------------------------


def test_tarmac_delay_holds_the_shipment_on_a_hot_ramp() -> None:
    scenario = load_scenario("tarmac-delay")
    plan = scenario.shipments[0]
    delayed = plan_route(plan, scenario.seed)
    normal = plan_route(plan.model_copy(update={"events": []}), scenario.seed)
    assert delayed.first("air").start_min == normal.first("air").start_min + 180  # type: ignore[union-attr]
    _, messages = run("tarmac-delay")
    airport = Point(delayed.lane.departure.lat, delayed.lane.departure.lon)
    flight = delayed.first("air")
    assert flight is not None
    on_ramp = [
        r
        for r in readings(messages)
        if flight.start_min - 180 <= minute_of(scenario, r["ts"]) < flight.start_min
    ]
    assert len(on_ramp) == 18
    assert all(distance_km(airport, Point(r["lat"], r["lon"])) < 1.0 for r in on_ramp)
    # 38 °C on the ramp warms the payload even through fresh packs.
    _, control = without_events(scenario)
    assert max(r["temp_c"] for r in on_ramp) > max(r["temp_c"] for r in readings(control)) - 0.5


def test_customs_delay_lengthens_the_hold_and_the_packs_run_out() -> None:
    scenario, messages = run("customs-delay")
    route = plan_route(scenario.shipments[0], scenario.seed)
    customs = [leg for leg in route.legs if leg.kind == "customs"]
    assert sum(leg.end_min - leg.start_min for leg in customs) >= 10 * 60 * 0.9 + 1800
    arrival = Point(route.lane.arrival.lat, route.lane.arrival.lon)
    series = readings(messages)
    held = [r for r in series if any(leg.contains(minute_of(scenario, r["ts"])) for leg in customs)]
    assert all(distance_km(arrival, Point(r["lat"], r["lon"])) < 1.0 for r in held)
    assert max(r["temp_c"] for r in held) > 8.0
    control_scenario, control = without_events(scenario)
    delivered = plan_route(control_scenario.shipments[0], scenario.seed).delivered_at_min
    on_time = [r for r in readings(control) if minute_of(scenario, r["ts"]) < delivered]
    assert max(r["temp_c"] for r in on_time) <= 8.0  # the same packs last a normal clearance


def test_route_deviation_leaves_the_road_and_comes_back() -> None:
    scenario, messages = run("route-deviation")
    _, control = without_events(scenario)
    moved = {
        minute_of(scenario, a["ts"]): distance_km(
            Point(a["lat"], a["lon"]), Point(b["lat"], b["lon"])
        )
        for a, b in zip(readings(messages), readings(control), strict=True)
    }
    assert 35 < moved[240] <= 40.5  # the middle of the 180-300 window
    assert all(km < 0.05 for m, km in moved.items() if m <= 180 or m >= 300)


def test_wrong_delivery_ends_at_another_address() -> None:
    scenario, messages = run("wrong-delivery")
    lane = scenario.shipments[0].route_lane
    hospital = Point(lane.destination.lat, lane.destination.lon)
    last = [r for r in readings(messages) if "lat" in r][-1]
    assert 7.5 < distance_km(hospital, Point(last["lat"], last["lon"])) < 8.5
    _, control = without_events(scenario)
    last = [r for r in readings(control) if "lat" in r][-1]
    assert distance_km(hospital, Point(last["lat"], last["lon"])) < 0.5


def test_air_legs_follow_the_great_circle_and_have_no_fixes() -> None:
    scenario, messages = run("flight-store-and-forward")
    route = plan_route(scenario.shipments[0], scenario.seed)
    flight = route.first("air")
    assert flight is not None
    km = distance_km(flight.frm, flight.to)
    middle = flight.position((flight.start_min + flight.end_min) / 2)
    assert distance_km(flight.frm, middle) == pytest.approx(km / 2, rel=1e-6)
    # Newark to Singapore is about 15 300 km: ~18 h at block speed.
    assert 15_000 < km < 15_600 and 16 * 60 < flight.end_min - flight.start_min < 22 * 60
    in_flight = [r for r in readings(messages) if flight.contains(minute_of(scenario, r["ts"]))]
    assert in_flight and all("lat" not in r for r in in_flight)
    batches = [m for m in messages if m.kind == "batch"]
    assert batches and all(m.readings <= 100 for m in batches)
    assert {at_minute(scenario, m) for m in batches} == {
        min(at_minute(scenario, m) for m in batches)
    }
    assert at_minute(scenario, batches[0]) >= flight.end_min


# -- the logger and its radio ------------------------------------------------------------


def test_offline_gap_is_filled_by_one_batch() -> None:
    scenario, messages = run("offline-store-and-forward")
    live = [at_minute(scenario, m) for m in messages if m.kind == "reading"]
    assert not [m for m in live if 60 <= m < 240]  # nothing while offline
    (batch,) = [m for m in messages if m.kind == "batch"]
    assert at_minute(scenario, batch) == 240 and batch.fault == "offline"
    filled = [minute_of(scenario, r["ts"]) for r in json.loads(batch.payload)["readings"]]
    assert filled == [60 + 10 * i for i in range(18)]
    # Every slot is there once, up to the flight (whose readings wait for the landing).
    every = sorted(minute_of(scenario, r["ts"]) for r in readings(messages))
    assert len(every) > 24 and every == [10 * i for i in range(len(every))]


def test_duplicates_are_byte_identical_resends_within_the_window() -> None:
    scenario, messages = run("duplicate-resend")
    copies = [m for m in messages if m.kind == "duplicate"]
    assert [at_minute(scenario, m) for m in copies] == [60 + 5 * i for i in range(12)]
    payloads = [m.payload for m in messages]
    for copy in copies:
        assert payloads.count(copy.payload) == 2


def test_clock_reset_gives_same_timestamps_with_different_values() -> None:
    scenario, messages = run("clock-reset")
    seen: dict[str, list[dict[str, Any]]] = {}
    for r in readings(messages):
        seen.setdefault(r["ts"], []).append(r)
    conflicts = {ts: rs for ts, rs in seen.items() if len(rs) > 1}
    assert sorted(minute_of(scenario, ts) for ts in conflicts) == [120, 130, 140, 150, 160, 170]
    for first, second in conflicts.values():
        assert (first["temp_c"], first["seq"]) != (second["temp_c"], second["seq"])


def test_clock_skew_stamps_readings_ahead_and_drifting() -> None:
    scenario, messages = run("clock-skew")
    for r in readings(messages):
        true = r["_at"]
        ahead = (datetime.fromisoformat(r["ts"]) - true).total_seconds()
        minutes = (true - scenario.start).total_seconds() / 60
        assert ahead == round(420 + 30 * minutes / 1440)
    assert ahead > 5 * 60  # beyond ingest's tolerance: flagged clock_ahead


def test_sensor_error_reports_null_temperature() -> None:
    scenario, messages = run("sensor-error")
    failed = [r for r in readings(messages) if r["status"] == "sensor_error"]
    assert [minute_of(scenario, r["ts"]) for r in failed] == [100 + 5 * i for i in range(8)]
    assert all(r["temp_c"] is None for r in failed)
    parsed = parse_payload(json.dumps({**failed[0], "_at": None}).encode())
    assert parsed[0].temp_c is None and parsed[0].status == "sensor_error"


def test_battery_drains_to_silence() -> None:
    scenario, messages = run("battery-drain")
    series = readings(messages)
    assert max(minute_of(scenario, r["ts"]) for r in series) < 300  # empty at 60 + 240
    levels = [r["battery_pct"] for r in series]
    assert levels == sorted(levels, reverse=True) and levels[-1] < 2.5
    low = [r for r in series if r["status"] == "low_battery"]
    assert low and all(r["battery_pct"] < 10 for r in low)


def test_malformed_payloads_are_refused_for_their_reason() -> None:
    scenario, messages = run("malformed-payloads")
    refused = {}
    for m in messages:
        if not m.valid:
            with pytest.raises(PayloadError) as err:
                parse_payload(m.payload.encode(), topic_device_id=m.device)
            refused.setdefault(m.fault, str(err.value))
    assert len([m for m in messages if not m.valid]) == 7 + 2 + 1
    assert "not JSON" in refused["truncated"]
    assert "must be a JSON object" in refused["json_array"]
    assert "temp_c: required" in refused["missing_temp"]
    assert "no UTC offset" in refused["naive_ts"]
    assert "plausible range" in refused["implausible_temp"]
    assert "does not match the topic" in refused["wrong_device"]
    assert "non-empty list" in refused["empty_batch"]
    # The real readings still arrive: one every 10 minutes.
    assert len(readings(messages)) == 4 * 6 + 1


def test_reboot_restarts_the_counter_and_reports_zero_position() -> None:
    scenario, messages = run("reboot-zero-gps")
    series = readings(messages)
    by_minute = {minute_of(scenario, r["ts"]): r for r in series}
    assert by_minute[115]["seq"] == 23 and by_minute[120]["seq"] == 0
    zero = [m for m, r in by_minute.items() if (r.get("lat"), r.get("lon")) == (0.0, 0.0)]
    assert zero == [120, 125, 130, 135]
    assert by_minute[140]["lat"] != 0.0


def test_events_compose_and_each_changes_only_its_part() -> None:
    """Adding an event leaves readings outside its reach byte-identical."""
    scenario = load_scenario("mixed-faults")
    plan = next(p for p in scenario.shipments if p.ref == "MF-005")  # sensor error + deviation
    both = fleet_messages(scenario, [plan], scenario.start, 3)
    only_sensor = plan.model_copy(update={"events": [plan.events[0]]})
    single = fleet_messages(scenario, [only_sensor], scenario.start, 3)
    differ = [
        minute_of(scenario, a["ts"])
        for a, b in zip(readings(both), readings(single), strict=True)
        if a != b
    ]
    assert differ and all(60 < m < 150 for m in differ)  # route_deviation 60-150 only


def test_device_scaling_gives_distinct_loggers() -> None:
    from simulators.scenario import scale_fleet

    scenario = load_scenario("walking-skeleton")
    plans: list[ShipmentPlan] = scale_fleet(scenario, 10)
    assert len({p.device for p in plans}) == 10
    messages = fleet_messages(scenario, plans, scenario.start, 1)
    first = {m.device: m.payload for m in reversed(messages)}
    assert first["LOG-SK-001"] != first["LOG-SK-001-001"]  # own noise, own route jitter
    assert isoformat_utc(scenario.start + timedelta(hours=12)) in messages[-1].payload

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ingest.parser import (
    PayloadError,
    _decode,
    _plain_reading,
    _reading,
    _readings,
    parse_payload,
    parse_timestamp,
    parse_topic,
)


def _payload(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_single_reading_with_all_fields() -> None:
    [r] = parse_payload(
        _payload(
            device_id="LOG-00042",
            ts="2026-11-25T10:15:00Z",
            seq=1234,
            temp_c=4.8,
            rh_pct=41.0,
            lat=40.6413,
            lon=-73.7781,
            battery_pct=87,
            light_lux=0.0,
            shock_g=0.1,
            status="ok",
            firmware="ignored",
        ),
        topic_device_id="LOG-00042",
    )
    assert r.ts == datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
    assert (r.seq, r.temp_c, r.battery_pct, r.status) == (1234, 4.8, 87.0, "ok")


def test_batch_and_epoch_milliseconds() -> None:
    readings = parse_payload(
        _payload(
            device_id="D1",
            readings=[
                {"ts": 1_764_065_700_000, "temp_c": 4.7},
                {"ts": "2026-11-25T11:15:00+01:00", "temp_c": 4.9},
            ],
        )
    )
    assert [r.ts for r in readings] == [
        datetime(2025, 11, 25, 10, 15, tzinfo=UTC),
        datetime(2026, 11, 25, 10, 15, tzinfo=UTC),
    ]
    assert all(r.device_id == "D1" for r in readings)


def test_sensor_error_may_have_null_temperature() -> None:
    [r] = parse_payload(
        _payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=None, status="sensor_error")
    )
    assert r.temp_c is None and r.status == "sensor_error"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (_payload(ts="2026-01-01T00:00:00Z", temp_c=1), "device_id: required"),
        (_payload(device_id="D1", temp_c=1), "ts: required"),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00", temp_c=1), "no UTC offset"),
        (_payload(device_id="D1", ts="yesterday", temp_c=1), "not an RFC 3339"),
        (_payload(device_id="D1", ts=1_764_065_700, temp_c=1), "not epoch milliseconds"),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z"), "temp_c: required"),
        (
            _payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=None),
            'only with status "sensor_error"',
        ),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c="4.5"), "not a finite number"),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=250), "plausible range"),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4, lat=91), "lat: 91"),
        (
            _payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4, battery_pct=101),
            "battery_pct",
        ),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4, status="great"), "status"),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4, seq=-1), "seq"),
        (_payload(device_id="D1", readings=[]), "non-empty list"),
        (
            _payload(
                device_id="D1",
                readings=[
                    {"ts": "2026-01-01T00:00:00Z", "temp_c": 4},
                    {"ts": "2026-01-01T00:05:00Z", "temp_c": 999},
                ],
            ),
            r"readings\[1\]\.temp_c",
        ),
        (
            _payload(
                device_id="D1", readings=[{"device_id": "D2", "ts": 1_764_065_700_000, "temp_c": 4}]
            ),
            "differs from",
        ),
        (
            _payload(device_id="D1", ts="0001-01-01T00:00:00+05:00", temp_c=4),
            "ts: '0001-01-01T00:00:00\\+05:00' is out of range in UTC",
        ),
        (
            _payload(device_id="D1", ts="9999-12-31T23:59:59-01:00", temp_c=4),
            "is out of range in UTC",
        ),
        # Integers too big for a float, and beyond what Python converts from text.
        (
            b'{"device_id": "D1", "ts": "2026-01-01T00:00:00Z", "temp_c": 1' + b"0" * 400 + b"}",
            r"temp_c: 10+ is outside the plausible range",
        ),
        (
            b'{"device_id": "D1", "ts": "2026-01-01T00:00:00Z", "temp_c": 1' + b"0" * 5000 + b"}",
            "payload is not JSON",
        ),
    ],
)
def test_invalid_payloads_name_the_problem(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_payload(payload)


def test_device_must_match_topic() -> None:
    with pytest.raises(PayloadError, match="does not match the topic"):
        parse_payload(
            _payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4), topic_device_id="D2"
        )


def test_topic_shape() -> None:
    topic = parse_topic("coldchain/v1/acme-cold/LOG-1/telemetry", "coldchain/v1")
    assert (topic.carrier, topic.device_id) == ("acme-cold", "LOG-1")
    for bad in (
        "coldchain/v1/acme/LOG-1/status",
        "other/v1/acme/LOG-1/telemetry",
        "coldchain/v1/LOG-1/telemetry",
    ):
        with pytest.raises(PayloadError, match="is not coldchain/v1"):
            parse_topic(bad, "coldchain/v1")


def test_timestamp_offsets_normalise_to_utc() -> None:
    assert parse_timestamp("2026-05-01T12:00:00-04:00") == datetime(2026, 5, 1, 16, tzinfo=UTC)


@pytest.mark.parametrize("device_id", ["LOG\x00", "", "a b", "x" * 65, "-LOG"])
def test_device_id_shape_is_checked(device_id: str) -> None:
    with pytest.raises(PayloadError, match="device_id"):
        parse_payload(_payload(device_id=device_id, ts="2026-01-01T00:00:00Z", temp_c=4))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4, seq=2**63), "seq: must"),
        (_payload(device_id="D1", ts="2026-01-01T00:00:00Z", temp_c=4, status=["ok"]), "status"),
        (b'{"device_id": "D1", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too deeply"),
        # Beyond 64 bits orjson reads integers as floats; the reason still shows the integer.
        (
            _payload(device_id="D1", ts=12345678901234567890123, temp_c=4),
            "ts: 12345678901234567890123 is not epoch milliseconds",
        ),
        (b'{"device_id": "D1", "ts": "2026-01-01T00:00:00Z", "temp_c": NaN}', "not a finite"),
    ],
)
def test_margins_of_the_fast_decoder_keep_their_reasons(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_payload(payload)


def _stdlib_outcome(payload: bytes) -> object:
    """The parser's verdict with the standard-library decoder only (its reference)."""
    try:
        return _readings(_decode(payload), None)
    except PayloadError as exc:
        return str(exc)


def _fast_outcome(payload: bytes) -> object:
    try:
        return parse_payload(payload)
    except PayloadError as exc:
        return str(exc)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["ok", "sensor_error", "D1", "2026-01-01T00:00:00Z", "\ud800"])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_reading_like = st.fixed_dictionaries(
    {"device_id": st.sampled_from(["D1", "D2", "", 7])},
    optional={
        "ts": st.sampled_from(
            [
                "2026-01-01T00:00:00Z",
                "0001-01-01T00:00:00+05:00",
                1_764_065_700_000,
                2**65,
                "x",
                None,
            ]
        ),
        "temp_c": _json_values | st.floats(-250, 150),
        "seq": _json_values,
        "status": _json_values,
        "lat": _json_values,
        "readings": st.lists(st.dictionaries(st.sampled_from(["ts", "temp_c"]), _json_values)),
    },
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_reading_like, _json_values), st.booleans())
def test_fast_decoder_agrees_with_the_standard_library(document: object, spaced: bool) -> None:
    payload = json.dumps(document, separators=(", ", ": ") if spaced else (",", ":")).encode()
    assert _fast_outcome(payload) == _stdlib_outcome(payload)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fast_decoder_agrees_on_arbitrary_bytes(payload: bytes) -> None:
    assert _fast_outcome(payload) == _stdlib_outcome(payload)


def _field(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly plausible values, sometimes anything JSON can carry."""
    return st.one_of(*[valid] * 8, _json_values, st.integers(-(2**70), 2**70))


_numbers = {
    name: _field(st.floats(-250, 250_000) | st.integers(-250, 250_000))
    for name in ("rh_pct", "lat", "lon", "battery_pct", "light_lux", "shock_g")
}
_item = st.fixed_dictionaries(
    {
        "ts": _field(
            st.sampled_from(
                [
                    "2026-01-01T00:00:00Z",
                    "2026-01-01T01:00:00+01:00",
                    "2026-01-01T00:00:00.123456+00:00",
                    "2026-01-01T00:00:00",  # no offset
                    "2026-02-30T00:00:00Z",
                    1_764_065_700_000,
                ]
            )
        ),
        "temp_c": _field(st.floats(-210, 110) | st.integers(-210, 110)),
    },
    optional={
        "seq": _field(st.integers(-1, 2**64)),
        "status": _field(st.sampled_from(["ok", "sensor_error", "alarm", "OK"])),
        **_numbers,
    },
)


def _verdict(item: dict[str, object]) -> object:
    try:
        reading = _reading("D1", item, "")
    except PayloadError as exc:
        return str(exc)
    return reading, [type(value) for value in reading], reading.ts.tzinfo


@settings(max_examples=1500, deadline=None)
@given(_item)
def test_one_pass_check_agrees_with_the_full_one(item: dict[str, object]) -> None:
    """``_plain_reading`` may leave a reading to ``_reading`` but never decides it
    differently: same values, same types, UTC."""
    plain = _plain_reading("D1", item)
    if plain is not None:
        assert _verdict(item) == (plain, [type(value) for value in plain], UTC)
    note = "taken" if plain is not None else "left"
    event(f"one-pass check {note}")


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "ts": st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
            "temp_c": st.floats(-200, 100) | st.integers(-200, 100),
        },
        optional={
            "seq": st.integers(0, 2**63 - 1),
            "lat": st.floats(-90, 90) | st.integers(-90, 90),
            "battery_pct": st.floats(0, 100) | st.integers(0, 100),
            "status": st.sampled_from(["ok", "alarm", "door_open"]),
        },
    )
)
def test_one_pass_check_takes_plausible_readings(item: dict[str, object]) -> None:
    plain = _plain_reading("D1", item)
    assert plain is not None and _verdict(item) == (plain, [type(v) for v in plain], UTC)


def test_one_pass_check_takes_the_usual_reading() -> None:
    item = {"ts": "2026-01-01T01:00:00+01:00", "seq": 3, "temp_c": 5, "lat": 40.5, "lon": -73}
    plain = _plain_reading("D1", item)
    assert plain is not None and plain == _reading("D1", item, "")
    assert (plain.ts, plain.temp_c, plain.lon) == (datetime(2026, 1, 1, tzinfo=UTC), 5.0, -73.0)
    assert _plain_reading("D1", {**item, "temp_c": None, "status": "sensor_error"}) is None

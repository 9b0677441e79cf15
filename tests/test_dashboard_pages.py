"""The dashboard's screens in headless Chromium against a simulated fleet.

The walking-skeleton fleet is provisioned and its readings stored through the real ingest
writer; alerts are raised through the alerts service. Each test saves a screenshot of what
it checked under build/screenshots/ (CI keeps that folder as an artifact).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from playwright.sync_api import Page
from psycopg_pool import ConnectionPool

from alerts import oncall_config
from alerts.oncall import oncall_now_and_next
from alerts.service import raise_alert
from alerts.silences import create_silence
from core.accounts import create_user
from core.clock import SystemClock
from core.db import Row
from core.settings import Settings
from core.severity import Severity
from dashboard import queries
from ingest.service import IncomingMessage, store_batch
from simulators.fleet import fleet_readings, topic_for
from simulators.provision import provision
from simulators.publisher import simulation_start
from simulators.scenario import load_scenario
from tests.browser import chromium_page, save_screenshot
from tests.staff import browser_sign_in, post_dash_callback, served_dashboard

pytestmark = pytest.mark.storage

PASSWORD = "dashboard pages password"
ONCALL = {
    "people": [
        {"id": "ana", "name": "Ana Ops", "phone": "+15555550101", "time_zone": "UTC"},
        {"id": "ben", "name": "Ben Ops", "phone": "+15555550102", "time_zone": "UTC"},
    ],
    "schedules": [
        {
            "id": "desk",
            "name": "Logistics desk",
            "layers": [
                {
                    "name": "daily",
                    "participants": ["ana", "ben"],
                    "handoff": "daily",
                    "handoff_at": "09:00",
                    "start": "2026-01-01",
                    "time_zone": "UTC",
                }
            ],
        }
    ],
}


@pytest.fixture
def fleet(settings: Settings, db: psycopg.Connection[Row]) -> dict[str, int]:
    """The walking-skeleton fleet with 12 h of readings ending now, in four map states."""
    scenario = load_scenario("walking-skeleton")
    plans = list(scenario.shipments)
    now = SystemClock().now()
    start = simulation_start(scenario, now, None)
    ids = provision(db, scenario, plans, start)
    messages = [
        IncomingMessage(
            topic=topic_for(settings.topic_prefix, m.carrier, m.device),
            payload=m.payload.encode(),
            received_at=now,
        )
        for m in fleet_readings(scenario, plans, start, scenario.seed)
    ]
    for i in range(0, len(messages), 500):
        store_batch(db, messages[i : i + 500], settings.topic_prefix)
    for ref, rule, severity in (
        ("SKEL-002", "high-30m", Severity.HIGH),  # excursion
        ("SKEL-003", "battery-low", Severity.LOW),  # warning
        ("SKEL-004", "logger-offline", Severity.MEDIUM),  # offline
    ):
        ids[rule] = raise_alert(
            db,
            shipment_id=ids[ref],
            rule_id=rule,
            severity=severity,
            summary=f"{rule} on {ref}",
            message=f"{rule} on {ref}",
            condition_at=now,
            now=now,
        ).alert_id
    create_user(db, "lou@example.org", "Lou Logistics", "logistics", PASSWORD, actor="test")
    create_user(db, "cal@example.org", "Cal Clinical", "clinical", PASSWORD, actor="test")
    return ids


@pytest.fixture
def base_url(settings: Settings, pool: ConnectionPool[psycopg.Connection[Row]]) -> Iterator[str]:
    with served_dashboard(settings, pool) as url:
        yield url


def _map_traces(page: Page) -> dict[str, list[int]]:
    """Shipment ids per marker trace, read from the figure Plotly is drawing."""
    traces: list[dict[str, Any]] = page.evaluate(
        """() => document.querySelector('#shipments-map .js-plotly-plot').data
                .map(t => ({name: t.name, ids: t.customdata || []}))"""
    )
    return {t["name"]: list(t["ids"]) for t in traces if t["name"] != "trail"}


def _wait_for_map(page: Page, shipments: int) -> dict[str, list[int]]:
    page.wait_for_function(
        """n => { const g = document.querySelector('#shipments-map .js-plotly-plot');
                  return g && g.data && g.data.reduce(
                      (k, t) => k + (t.customdata ? t.customdata.length : 0), 0) === n; }""",
        arg=shipments,
    )
    return _map_traces(page)


def test_map_states_filters_search_units_and_click_through(
    base_url: str, fleet: dict[str, int]
) -> None:
    with chromium_page() as page:
        page.set_viewport_size({"width": 1366, "height": 900})
        browser_sign_in(page, base_url + "/", "lou@example.org", PASSWORD)
        traces = _wait_for_map(page, 4)
        assert traces["excursion"] == [fleet["SKEL-002"]]
        assert traces["warning"] == [fleet["SKEL-003"]]
        assert traces["offline"] == [fleet["SKEL-004"]]
        assert traces["ok"] == [fleet["SKEL-001"]]
        assert traces["delivered"] == []
        assert page.inner_text("#map-count-excursion") == "excursion 1"
        # Trails: the recent fixes of the four shipments in view, one line with gaps.
        trail = page.evaluate(
            "() => document.querySelector('#shipments-map .js-plotly-plot').data[0].lat"
        )
        assert len([p for p in trail if p is None]) == 3 and len(trail) > 8
        # The first shipment in the list is the one needing most attention.
        page.wait_for_selector("#shipments-table tbody tr")
        first = page.locator("#shipments-table tbody tr").first
        assert "SKEL-002" in first.inner_text() and "excursion" in first.inner_text()
        assert "UTC ·" in first.locator(".expected-delivery").inner_text()
        save_screenshot(page, "map-overview")

        # Filter by state: only the excursion stays, on the map and in the list.
        page.click("#filter-state")
        page.click(".dash-dropdown-option:has-text('excursion')")
        page.keyboard.press("Escape")
        assert _wait_for_map(page, 1) == {
            "delivered": [],
            "ok": [],
            "offline": [],
            "warning": [],
            "excursion": [fleet["SKEL-002"]],
        }
        page.wait_for_function(
            "() => document.querySelectorAll('#shipments-table tbody tr').length === 1"
        )
        save_screenshot(page, "map-filtered-excursion")
        page.click("#filter-state .dash-dropdown-clear")
        _wait_for_map(page, 4)

        # Search by case reference.
        page.fill("#map-search", "case-skel-003")
        page.press("#map-search", "Enter")
        assert _wait_for_map(page, 1)["warning"] == [fleet["SKEL-003"]]
        page.fill("#map-search", "")
        page.press("#map-search", "Enter")
        _wait_for_map(page, 4)

        # °F on request: the list follows at once, the choice survives a reload.
        assert "°C" in page.locator("#shipments-table .last-temp").first.inner_text()
        page.click("#unit-switch")
        page.wait_for_function(
            "() => document.querySelector('#shipments-table .last-temp').innerText.includes('°F')"
        )
        hover = page.evaluate(
            "() => document.querySelector('#shipments-map .js-plotly-plot').data"
            ".filter(t => t.name === 'ok')[0].text[0]"
        )
        assert hover.startswith("SKEL-001 · ") and hover.endswith("°F")

        # A click on a marker opens its shipment (Plotly's own click event).
        page.evaluate(
            """() => { const g = document.querySelector('#shipments-map .js-plotly-plot');
                       const k = g.data.findIndex(t => t.name === 'excursion');
                       g.emit('plotly_click', {points: [{curveNumber: k, pointNumber: 0}]}); }"""
        )
        page.wait_for_selector("#shipment-title")
        assert page.url == f"{base_url}/shipments/{fleet['SKEL-002']}"
        assert page.inner_text("#shipment-title") == "Shipment SKEL-002"
        page.wait_for_selector("#temperature-chart .js-plotly-plot")
        axis = page.evaluate(
            "() => document.querySelector('#temperature-chart .js-plotly-plot')"
            ".layout.yaxis.title.text"
        )
        assert axis == "°F"
        # Times in UTC and at the destination (São Paulo, UTC-3).
        departed = page.inner_text(".fact-departed")
        assert " UTC · " in departed and "-03" in departed
        save_screenshot(page, "shipment-fahrenheit")

        page.reload()
        page.wait_for_selector("#temperature-chart .js-plotly-plot")
        assert page.is_checked("#unit-switch")
        page.click("#unit-switch")
        page.wait_for_function(
            """() => document.querySelector('#temperature-chart .js-plotly-plot')
                     .layout.yaxis.title.text === '°C'"""
        )

        # A tablet, upright: everything stacks; wide tables scroll inside their box.
        page.set_viewport_size({"width": 768, "height": 1024})
        page.goto(base_url + "/")
        _wait_for_map(page, 4)
        page.wait_for_selector("#shipments-table tbody tr")
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (
            "the page scrolls sideways on a tablet"
        )
        map_box = page.locator("#shipments-map").bounding_box()
        alerts_box = page.locator("#alerts-panel").bounding_box()
        assert map_box is not None and alerts_box is not None
        assert alerts_box["y"] >= map_box["y"] + map_box["height"]  # stacked, not squeezed
        save_screenshot(page, "map-tablet")


def _chart(page: Page) -> dict[str, Any]:
    """Traces and secondary axis of the shipment chart, read from the figure Plotly draws."""
    chart: dict[str, Any] = page.evaluate(
        """() => { const g = document.querySelector('#temperature-chart .js-plotly-plot');
                   return {traces: g.data.map(t => ({name: t.name || null,
                                                     yaxis: t.yaxis || 'y',
                                                     hover: t.hovertemplate || null,
                                                     y: Array.from(t.y || [])})),
                           yaxis2: g.layout.yaxis2 ? {range: g.layout.yaxis2.range} : null}; }"""
    )
    return chart


def test_shipment_chart_shows_humidity_only_when_measured(
    base_url: str, fleet: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    # SKEL-004's logger has no humidity sensor: its readings carry no rh_pct.
    db.execute("UPDATE readings SET rh_pct = NULL WHERE shipment_id = %s", (fleet["SKEL-004"],))
    measured = queries.shipment_readings(db, fleet["SKEL-002"])
    assert 0 < len(measured) <= queries.MAX_CHART_BUCKETS + 1
    expected = [None if r["rh_pct"] is None else round(r["rh_pct"], 1) for r in measured]
    assert any(v is not None for v in expected)
    assert all(0 <= v <= 100 for v in expected if v is not None)
    dry = queries.shipment_readings(db, fleet["SKEL-004"])
    assert dry and all(r["rh_pct"] is None for r in dry)
    assert all(r["temp_c"] is not None for r in dry)  # temperature still charted

    with chromium_page() as page:
        page.set_viewport_size({"width": 1366, "height": 900})
        browser_sign_in(
            page, f"{base_url}/shipments/{fleet['SKEL-002']}", "lou@example.org", PASSWORD
        )
        page.wait_for_selector("#temperature-chart .js-plotly-plot")
        chart = _chart(page)
        humidity = [t for t in chart["traces"] if t["yaxis"] == "y2"]
        assert [t["name"] for t in humidity] == ["relative humidity %"]
        assert humidity[0]["y"] == expected and "%{y:.1f} %" in humidity[0]["hover"]
        assert chart["yaxis2"] == {"range": [0, 100]}
        assert "temperature °C" in [t["name"] for t in chart["traces"]]
        assert sum(len(t["y"]) for t in chart["traces"]) == 4 * len(measured)
        save_screenshot(page, "shipment-humidity")

        # °F converts temperature only; humidity stays in %.
        page.click("#unit-switch")
        page.wait_for_function(
            """() => document.querySelector('#temperature-chart .js-plotly-plot')
                     .layout.yaxis.title.text === '°F'"""
        )
        in_f = _chart(page)
        assert "temperature °F" in [t["name"] for t in in_f["traces"]]
        assert [t["y"] for t in in_f["traces"] if t["yaxis"] == "y2"] == [expected]

        page.goto(f"{base_url}/shipments/{fleet['SKEL-004']}")
        page.wait_for_selector("#shipment-title:has-text('SKEL-004')")
        page.wait_for_selector("#temperature-chart .js-plotly-plot")
        without = _chart(page)
        names = [t["name"] for t in without["traces"]]
        assert "temperature °F" in names and "relative humidity %" not in names
        assert all(t["yaxis"] == "y" for t in without["traces"]) and without["yaxis2"] is None
        save_screenshot(page, "shipment-no-humidity")


def test_alerts_page_acknowledge_history_and_role_refusal(
    base_url: str, fleet: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    high = fleet["high-30m"]
    now = SystemClock().now()
    oncall_config.apply(
        db, oncall_config.parse(ONCALL, "test"), actor="test", source="test", now=now
    )
    on_call = oncall_now_and_next(db, now)
    create_silence(
        db,
        shipment_id=fleet["SKEL-003"],
        rule_id="battery-low",
        reason="battery swap booked at the hub",
        ends_at=now + timedelta(hours=2),
        actor="lou@example.org",
        now=now,
    )
    with chromium_page() as page:
        page.set_viewport_size({"width": 1024, "height": 1366})  # a tablet, upright
        browser_sign_in(page, base_url + "/alerts", "lou@example.org", PASSWORD)
        page.wait_for_selector(".board-alert")
        cards = page.locator(".board-alert")
        assert cards.count() == 3
        # By severity: high, then medium, then low.
        classes = [str(c.get_attribute("class")).split() for c in cards.all()]
        assert [next(c for c in names if c.startswith("severity-")) for names in classes] == [
            "severity-high",
            "severity-medium",
            "severity-low",
        ]
        assert page.inner_text("#board-summary") == "high 1medium 1low 1"
        card = page.locator(f"#board-alert-{high}")
        card.locator("summary").click()
        pages = card.locator(".page-row")
        assert pages.count() == 1
        assert "outbox" in pages.first.inner_text()
        # Who is on call now and next, as the schedule resolves; the silence in force.
        [desk] = on_call
        assert desk.current is not None and desk.next_person is not None
        assert page.inner_text("#oncall-desk .oncall-now").startswith(desk.current.name)
        assert page.inner_text("#oncall-desk .oncall-next").startswith(desk.next_person.name)
        silence = page.inner_text("#silences-panel")
        assert "shipment SKEL-003 · rule battery-low" in silence and "battery swap" in silence
        # A refresh with nothing new leaves the page alone (the history stays open).
        page.wait_for_timeout(4000)
        assert card.locator("details").get_attribute("open") is not None

        callbacks: list[str] = []
        page.on(
            "request",
            lambda r: (
                callbacks.append(r.post_data or "") if "_dash-update-component" in r.url else None
            ),
        )
        card.locator(".board-ack").click()
        page.wait_for_selector("#alert-action-done")
        assert "acknowledged by lou@example.org" in page.inner_text("#alert-action-done")
        page.wait_for_function(
            f"() => document.querySelector('#board-alert-{high}')"
            ".className.includes('state-acknowledged')"
        )
        row = db.execute(
            "SELECT state, acknowledged_by FROM alerts WHERE alert_id = %s", (high,)
        ).fetchone()
        assert row == {"state": "acknowledged", "acknowledged_by": "lou@example.org"}
        assert page.locator("#oncall-panel").count() == 1
        assert page.locator("#silences-panel").count() == 1
        save_screenshot(page, "alerts-acknowledged")
        click = next(body for body in callbacks if "board-action" in body)

        page.click("#sign-out")
        browser_sign_in(page, base_url + "/alerts", "cal@example.org", PASSWORD)
        page.wait_for_selector(".board-alert")
        assert page.locator(".board-alert button").count() == 0
        # The clinical role has no buttons; a hand-made callback is refused on the server.
        offline = fleet["logger-offline"]
        forged = json.loads(click)
        button = {"action": "resolve", "alert_id": offline, "type": "board-action"}
        forged["inputs"][1] = [{"id": button, "property": "n_clicks", "value": 1}]
        forged["changedPropIds"] = [json.dumps(button, separators=(",", ":")) + ".n_clicks"]
        answer = post_dash_callback(page, forged)
        assert answer["status"] == 200 and "may not do this: alert.resolve" in answer["text"]
        state = db.execute("SELECT state FROM alerts WHERE alert_id = %s", (offline,)).fetchone()
        assert state == {"state": "triggered"}
        denied = db.execute(
            "SELECT actor, entity_id FROM audit_log WHERE action = 'auth.permission_denied'"
        ).fetchall()
        assert denied == [{"actor": "cal@example.org", "entity_id": str(offline)}]
        save_screenshot(page, "alerts-clinical")


def test_devices_page_flags_and_sorting(
    base_url: str, fleet: dict[str, int], db: psycopg.Connection[Row]
) -> None:
    today = SystemClock().now().date()
    db.execute(
        "UPDATE devices SET calibration_due = %s, firmware = '2.4.1' "
        "WHERE device_id = 'LOG-SK-001'",
        (today - timedelta(days=3),),
    )
    db.execute(
        "UPDATE devices SET calibration_due = %s WHERE device_id <> 'LOG-SK-001'",
        (date(today.year + 1, 1, 1),),
    )
    db.execute("UPDATE device_latest SET battery_pct = 12 WHERE device_id = 'LOG-SK-003'")
    with chromium_page() as page:
        page.set_viewport_size({"width": 1366, "height": 900})
        browser_sign_in(page, base_url + "/devices", "lou@example.org", PASSWORD)
        page.wait_for_selector("#devices-table tbody tr")
        assert page.inner_text("#devices-overdue") == "1 calibration overdue"
        assert page.inner_text("#devices-battery-low") == "1 battery low"
        overdue = page.locator("#device-LOG-SK-001")
        assert "calibration overdue" in overdue.locator(".device-flags").inner_text()
        assert "2.4.1" in overdue.inner_text()
        assert "SKEL-001" in overdue.inner_text()  # the shipment it rides with
        assert "battery low" in page.inner_text("#device-LOG-SK-003 .device-flags")

        def order() -> list[str]:
            return page.locator("#devices-table .device-id").all_inner_texts()

        assert order() == ["LOG-SK-001", "LOG-SK-002", "LOG-SK-003", "LOG-SK-004"]
        # Sort by battery, lowest first: the low logger comes to the top; again: last.
        page.click("#devices-table th button:has-text('Battery %')")
        page.wait_for_selector("#devices-table th.sorted-ascending:has-text('Battery')")
        assert order()[0] == "LOG-SK-003"
        page.click("#devices-table th button:has-text('Battery %')")
        page.wait_for_selector("#devices-table th.sorted-descending:has-text('Battery')")
        assert order()[-1] == "LOG-SK-003"
        save_screenshot(page, "devices")
        page.click("#device-LOG-SK-003 a")
        page.wait_for_selector("#shipment-title")
        assert page.inner_text("#shipment-title") == "Shipment SKEL-003"

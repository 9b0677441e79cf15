"""The shipment quality report as PDF (reportlab): what QA and the file need in one place.

Temperature chart with the storage band, the evaluation summary (min/max/mean, MKT, time
out of range, verdict proposal), excursions, stability budget, serialized units, the
chain-of-custody timeline, the physician's signed receipt and QA's signed disposition.
A pure function of a ``ShipmentQuality`` and the time of printing.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any, Final
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Drawing, Line, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from case_link.quality import ShipmentQuality
from core.clock import isoformat_utc

_STYLES = getSampleStyleSheet()
_BODY: Final = ParagraphStyle("body", parent=_STYLES["BodyText"])
_H1: Final = ParagraphStyle("title", parent=_STYLES["Title"], fontSize=16, leading=20)
_H2: Final = ParagraphStyle("heading", parent=_STYLES["Heading2"])
_SMALL: Final = ParagraphStyle("small", parent=_BODY, fontSize=8, leading=10)
_CHART_W: Final = 170 * mm
_CHART_H: Final = 70 * mm
_MAX_POINTS: Final = 2000  # enough for a smooth line; a month at 5-min intervals is 8,640


def _when(value: datetime | None) -> str:
    return "—" if value is None else isoformat_utc(value).replace("T", " ")


def _num(value: float | None, unit: str = " °C") -> str:
    return "—" if value is None else f"{value:.2f}{unit}"


def _p(text: Any, style: ParagraphStyle = _SMALL) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(header: list[str], rows: list[list[Any]], widths: list[float] | None = None) -> Table:
    data = [[_p(h) for h in header]] + [[_p(c) for c in row] for row in rows]
    table = Table(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#9aa5b1")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    return table


def _fields(pairs: list[tuple[str, Any]]) -> Table:
    table = Table([[_p(k), _p(v)] for k, v in pairs], colWidths=[45 * mm, 125 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _rect(
    x: float,
    y: float,
    width: float,
    height: float,
    *,
    fill: colors.Color | None,
    stroke: colors.Color | None = None,
) -> Rect:
    # Colours are set after construction: types-reportlab declares Rect's keywords wrongly.
    rect = Rect(x, y, width, height)
    rect.fillColor = fill
    rect.strokeColor = stroke
    return rect


def temperature_chart(quality: ShipmentQuality) -> Drawing:
    """Temperature over device time, the storage band shaded, excursions in red."""
    drawing = Drawing(_CHART_W, _CHART_H)
    readings = quality.readings
    storage = quality.profile.storage
    left, bottom, width, height = 14 * mm, 10 * mm, _CHART_W - 18 * mm, _CHART_H - 16 * mm
    drawing.add(_rect(left, bottom, width, height, fill=None, stroke=colors.grey))
    if not readings:
        drawing.add(String(left + 4, bottom + height / 2, "No readings recorded", fontSize=9))
        return drawing
    temps = [t for _, t in readings]
    low = min(min(temps), storage.min_c) - 1.0
    high = max(max(temps), storage.max_c) + 1.0
    start, end = readings[0][0], readings[-1][0]
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return left + width * (at - start).total_seconds() / span

    def y(temp: float) -> float:
        return bottom + height * (temp - low) / (high - low)

    band_height = y(storage.max_c) - y(storage.min_c)
    drawing.add(_rect(left, y(storage.min_c), width, band_height, fill=colors.HexColor("#d9f2e3")))
    for label in (storage.min_c, storage.max_c):
        drawing.add(Line(left, y(label), left + width, y(label), strokeColor=colors.green))
        drawing.add(String(2, y(label) - 3, f"{label:g} °C", fontSize=7))
    for excursion in quality.excursions():
        x0 = x(max(excursion["started_at"], start))
        x1 = x(min(excursion["ended_at"] or end, end))
        drawing.add(_rect(x0, bottom, max(x1 - x0, 0.5), height, fill=colors.Color(1, 0, 0, 0.15)))
    step = max(1, len(readings) // _MAX_POINTS)
    sampled = readings[::step] + ([readings[-1]] if (len(readings) - 1) % step else [])
    # A step line: each reading holds until the next, as the evaluation counts it.
    points: list[float] = [x(sampled[0][0]), y(sampled[0][1])]
    for (_, held), (at, temp) in zip(sampled, sampled[1:], strict=False):
        points.extend((x(at), y(held), x(at), y(temp)))
    drawing.add(PolyLine(points, strokeColor=colors.HexColor("#1f4e79"), strokeWidth=1))
    drawing.add(String(left, 2, _when(start), fontSize=7))
    drawing.add(String(left + width, 2, _when(end), fontSize=7, textAnchor="end"))
    drawing.add(String(2, bottom + height - 4, f"{high:.0f} °C", fontSize=7))
    drawing.add(String(2, bottom, f"{low:.0f} °C", fontSize=7))
    return drawing


def _summary(quality: ShipmentQuality) -> list[Flowable]:
    result, profile = quality.evaluation, quality.profile
    mkt_limit = (
        f" (limit {profile.mkt.max_c:g} °C over {profile.mkt.window_h:g} h)"
        if (profile.mkt)
        else ""
    )
    pairs = [
        ("Readings", f"{result.readings} from {_when(result.start)} to {_when(result.end)}"),
        ("Min / max / mean", f"{_num(result.min_c)} / {_num(result.max_c)} / "
         f"{_num(quality.mean_c)}"),
        ("MKT", f"{_num(result.mkt_c)} overall; {_num(result.mkt_window_max_c)} highest "
         f"window{mkt_limit}"),
        ("Time (min)", f"in range {result.time_in_range_min:.1f}, above "
         f"{result.time_above_range_min:.1f}, below {result.time_below_range_min:.1f}, "
         f"data gap {result.data_gap_min:.1f}"
         + (f", unstudied {result.unstudied_min:.1f}" if profile.stability_budget else "")),
        ("Freeze–thaw cycles", result.freeze_thaw_cycles),
        ("Monitor's proposal", f"{quality.proposed_verdict} (this shipment: {result.verdict}; "
         "a proposal: QA signs the disposition)"),
    ]  # fmt: skip
    return [_fields(pairs)]


def _excursions(quality: ShipmentQuality) -> list[Flowable]:
    rows = [
        [e["direction"], _when(e["started_at"]), _when(e["ended_at"]) if e["ended_at"] else
         "still open", f"{e['duration_min']:.1f}", _num(e["peak_c"])]
        for e in quality.excursions()
    ]  # fmt: skip
    if not rows:
        return [_p("No excursions outside the storage range.", _BODY)]
    return [_table(["Direction", "Start", "End", "Minutes", "Peak"], rows)]


def _budget(quality: ShipmentQuality) -> list[Flowable]:
    rows = [
        [f"above {b['above_c']:g} up to {b['up_to_c']:g} °C", f"{b['budget_min']:g}",
         f"{b['this_leg_min']:.1f}", f"{b['earlier_legs_min']:.1f}", f"{b['used_min']:.1f}",
         f"{b['remaining_min']:.1f}", f"{100 * b['used_min'] / b['budget_min']:.1f} %"
         + (" EXCEEDED" if b["exceeded"] else "")]
        for b in quality.budget_across_legs
    ]  # fmt: skip
    if not rows:
        return [_p("The drug profile defines no stability budget.", _BODY)]
    top = max(b["up_to_c"] for b in quality.budget_across_legs)
    unstudied = quality.unstudied_min_across_legs
    this_leg = quality.evaluation.unstudied_min
    rows.append(
        [f"above {top:g} °C: unstudied", "none allowed", f"{this_leg:.1f}",
         f"{unstudied - this_leg:.1f}", f"{unstudied:.1f}", "—",
         "REJECTS" if unstudied > 0 else "—"]
    )  # fmt: skip
    header = ["Band", "Budget (min)", "This shipment (min)", "Earlier legs (min)", "Used (min)",
              "Remaining (min)", "Share used"]  # fmt: skip
    widths = [m * mm for m in (34, 20, 24, 24, 20, 24, 24)]
    legs = ", ".join(leg["shipment_ref"] for leg in quality.earlier_legs)
    note = (
        f"Earlier legs of these units: {legs}." if legs else "No earlier legs of these units."
    ) + (
        " Time hotter than a band counts against it too; time above the top band is"
        " unstudied exposure (no stability data covers it) and rejects the units."
    )
    return [_table(header, rows, widths), Spacer(1, 2 * mm), _p(note, _BODY)]


def _units(quality: ShipmentQuality) -> list[Flowable]:
    rows = [
        [u["gtin"], u["serial"], u["lot"], u["expiry"].isoformat(), u["legs"]]
        for u in quality.units
    ]
    if not rows:
        return [_p("No serialized units recorded.", _BODY)]
    return [_table(["GTIN", "Serial", "Lot", "Expiry", "Shipments (legs)"], rows)]


def _custody(quality: ShipmentQuality) -> list[Flowable]:
    rows = [
        [_when(e["at"]), e["event_type"].replace("_", " "), e["place_name"], e["actor"],
         e["note"] or ""]
        for e in quality.custody
    ]  # fmt: skip
    if not rows:
        return [_p("No custody events recorded.", _BODY)]
    widths = [32 * mm, 28 * mm, 40 * mm, 35 * mm, 35 * mm]
    return [_table(["Time (UTC)", "Event", "Place", "By", "Note"], rows, widths)]


def _receipt(quality: ShipmentQuality) -> list[Flowable]:
    r = quality.receipt
    if r is None:
        return [_p("No receipt recorded.", _BODY)]
    stored = f"yes, at {_when(r['stored_at'])}" if r["storage_confirmed"] else "no"
    return [
        _fields(
            [
                ("Received at", _when(r["received_at"])),
                ("Received by", r["received_by"]),
                ("Package intact", ("yes" if r["package_intact"] else "no")
                 + (f" — {r['package_note']}" if r["package_note"] else "")),
                ("Indicator / logger", r["indicator_status"]
                 + (f" — {r['indicator_note']}" if r["indicator_note"] else "")),
                ("Storage confirmed", stored),
                ("Signed by", f"{r['signer_name']} at {_when(r['signed_at'])}"),
                ("Meaning", r["signature_meaning"]),
                ("Record SHA-256", r["record_sha256"]),
            ]
        )
    ]  # fmt: skip


def _disposition(quality: ShipmentQuality) -> list[Flowable]:
    d = quality.disposition
    state = quality.shipment.get("quality_state")
    if d is None:
        suffix = f" (quality state: {state.replace('_', ' ')})" if state else ""
        return [_p(f"No QA disposition recorded{suffix}.", _BODY)]
    decision = d["decision"].replace("_", " ")
    if d["new_expiry_date"] is not None:
        decision += f", new expiry {d['new_expiry_date'].isoformat()}"
    return [
        _fields(
            [
                ("Decision", decision),
                ("Monitor's proposal", d["proposed_verdict"]),
                ("Reason", d["reason"]),
                ("Signed by", f"{d['printed_name']} ({d['signer_email']}) at "
                 f"{_when(d['signed_at'])}"),
                ("Meaning", d["meaning"]),
            ]
        )
    ]  # fmt: skip


def render_report(quality: ShipmentQuality, now: datetime) -> bytes:
    """The quality report of one shipment as PDF bytes."""
    s, profile = quality.shipment, quality.profile
    buffer = io.BytesIO()
    title = f"Shipment quality report — {s['shipment_ref']}"
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=title,
        author="coldchain",
        subject=f"Cold-chain quality record of shipment {s['shipment_ref']}",
    )
    story: list[Flowable] = [
        _p(title, _H1),
        _fields(
            [
                ("Shipment", f"{s['shipment_ref']} (id {s['shipment_id']}), status {s['status']}"),
                ("Case", s["case_ref"] or "not linked to a case"),
                ("Drug profile", f"{profile.name} ({profile.id}); storage "
                 f"{profile.storage.min_c:g} to {profile.storage.max_c:g} °C"),
                ("Route", f"{s['origin_name']} to {s['destination_name']}"
                 + (f" (lane {s['lane']})" if s["lane"] else "")),
                ("Departed / delivered", f"{_when(s['departed_at'])} / {_when(s['delivered_at'])}"),
                ("Loggers", ", ".join(quality.devices) or "none assigned"),
                ("Printed", _when(now)),
            ]
        ),
        _p("Temperature", _H2),
        temperature_chart(quality),
        Spacer(1, 3 * mm),
        *_summary(quality),
        _p("Excursions", _H2),
        *_excursions(quality),
        _p("Stability budget used", _H2),
        *_budget(quality),
        _p("Serialized units", _H2),
        *_units(quality),
        _p("Chain of custody", _H2),
        *_custody(quality),
        _p("Physician's receipt", _H2),
        *_receipt(quality),
        _p("QA disposition", _H2),
        *_disposition(quality),
    ]  # fmt: skip
    document.build(story)
    return buffer.getvalue()

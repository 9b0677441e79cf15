"""HTML of the physician pages: self-contained (no external assets), phone-sized, and every
value escaped on the way in. Pure functions of what they show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;
background:#f4f6f8;color:#1b1f24;line-height:1.45}
main{max-width:34rem;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.5rem 0 1rem}h2{font-size:1.05rem;margin:1.2rem 0 .4rem}
.card{background:#fff;border-radius:8px;padding:1rem;margin-bottom:1rem;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem .75rem;margin:0}dt{color:#555}
dd{margin:0;font-weight:600}
label{display:block;margin:.7rem 0 .2rem;font-weight:600}
.opt{font-weight:400;display:flex;gap:.5rem;align-items:flex-start;margin:.35rem 0}
input[type=text],input[type=datetime-local],input[type=date],textarea,select{width:100%;
box-sizing:border-box;font-size:1rem;padding:.55rem;border:1px solid #9aa4ae;border-radius:6px}
textarea{min-height:4.5rem}
button{width:100%;font-size:1.05rem;padding:.8rem;margin-top:1rem;border:0;border-radius:6px;
background:#0b5cad;color:#fff;font-weight:700}
.err{color:#b00020;font-size:.92rem;margin:.2rem 0}.warn{color:#8a4b00;font-weight:600}
.ok{color:#0a6b2d;font-weight:600}.meaning{background:#eef4fb;padding:.6rem;border-radius:6px}
code{word-break:break-all}
"""


def layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name=robots content="noindex,nofollow">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def invalid_page(contact: str) -> str:
    """The one answer to every unusable link: nothing about why."""
    return layout(
        "Link no longer valid",
        "<div class=card><h1>This link is no longer valid</h1>"
        "<p>It may have been used already or have expired.</p>"
        f"<p>Please contact {escape(contact)}.</p></div>",
    )


def local_time(value: datetime | None, tz: str) -> str:
    if value is None:
        return "—"
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def storage_range(shipment: Mapping[str, Any]) -> str:
    low, high = shipment["storage_min_c"], shipment["storage_max_c"]
    if low is None or high is None:
        return "the labelled storage temperature"
    return f"{low:g}–{high:g} °C"


def shipment_card(shipment: Mapping[str, Any]) -> str:
    tz = shipment["destination_tz"]
    if shipment["last_temp_c"] is None:
        logger = "no reading received"
    else:
        logger = (
            f"{shipment['last_temp_c']:.1f} °C at {local_time(shipment['last_reading_at'], tz)}"
        )
    if shipment["excursions"]:
        excursion = (
            f"<span class=warn>{int(shipment['excursions'])} temperature excursion(s) recorded"
            " in transit; keep the product and wait for our quality team before use.</span>"
        )
    else:
        excursion = "<span class=ok>none recorded</span>"
    return (
        "<div class=card><dl>"
        f"<dt>Shipment</dt><dd>{escape(shipment['shipment_ref'])}</dd>"
        f"<dt>Product</dt><dd>{escape(shipment['drug_name'])}</dd>"
        f"<dt>Store at</dt><dd>{escape(storage_range(shipment))}</dd>"
        f"<dt>Delivered</dt><dd>{escape(local_time(shipment['delivered_at'], tz))}</dd>"
        f"<dt>Logger</dt><dd>{escape(logger)}</dd>"
        f"<dt>Excursions</dt><dd>{excursion}</dd>"
        "</dl></div>"
    )


def error(problems: Mapping[str, str], name: str) -> str:
    message = problems.get(name)
    return f'<p class=err id="err-{escape(name)}">{escape(message)}</p>' if message else ""


def value(values: Mapping[str, Sequence[str]], name: str) -> str:
    found = values.get(name)
    return escape(found[0]) if found else ""


def radios(
    name: str, options: Sequence[tuple[str, str]], values: Mapping[str, Sequence[str]]
) -> str:
    chosen = values.get(name, [""])[0] if values.get(name) else ""
    return "".join(
        f'<label class=opt><input type=radio name="{escape(name)}" value="{escape(v)}"'
        f"{' checked' if chosen == v else ''}> {escape(text)}</label>"
        for v, text in options
    )


def checkbox(name: str, text: str, values: Mapping[str, Sequence[str]], box_value: str) -> str:
    checked = " checked" if box_value in values.get(name, []) else ""
    return (
        f'<label class=opt><input type=checkbox name="{escape(name)}" value="{escape(box_value)}"'
        f"{checked}> {escape(text)}</label>"
    )


def text_input(
    name: str,
    label: str,
    values: Mapping[str, Sequence[str]],
    problems: Mapping[str, str],
    kind: str = "text",
) -> str:
    return (
        f'<label for="{escape(name)}">{escape(label)}</label>'
        f'<input type={kind} id="{escape(name)}" name="{escape(name)}" '
        f'value="{value(values, name)}">{error(problems, name)}'
    )


def textarea(
    name: str, label: str, values: Mapping[str, Sequence[str]], problems: Mapping[str, str]
) -> str:
    return (
        f'<label for="{escape(name)}">{escape(label)}</label>'
        f'<textarea id="{escape(name)}" name="{escape(name)}">{value(values, name)}</textarea>'
        f"{error(problems, name)}"
    )


def signature_block(
    meaning: str, values: Mapping[str, Sequence[str]], problems: Mapping[str, str]
) -> str:
    return (
        "<h2>Signature</h2>"
        + text_input("signer_name", "Your printed name", values, problems)
        + f"<p class=meaning>{escape(meaning)}</p>"
        + checkbox("signature_agree", "I sign this record with the meaning above", values, "yes")
        + error(problems, "signature_agree")
    )


def form_page(
    title: str,
    intro: str,
    shipment: Mapping[str, Any],
    nonce: str,
    fields_html: str,
    problems: Mapping[str, str],
) -> str:
    message = problems.get("nonce") or "Some answers need attention; see the notes below."
    notice = f"<p class=err role=alert>{escape(message)}</p>" if problems else ""
    return layout(
        title,
        f"<h1>{escape(title)}</h1>{shipment_card(shipment)}<div class=card>{intro}"
        f"{notice}<form method=post autocomplete=off>"
        f'<input type=hidden name=nonce value="{escape(nonce)}">{fields_html}'
        "<button type=submit>Sign and submit</button></form></div>",
    )


def done_page(title: str, message: str, digest: str) -> str:
    return layout(
        title,
        f"<div class=card><h1>{escape(title)}</h1><p>{escape(message)}</p>"
        f"<p>Record fingerprint (SHA-256):<br><code id=record-sha256>{escape(digest)}</code></p>"
        "</div>",
    )

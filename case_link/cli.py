"""`coldchain cases …`: the exports staff need outside the browser.

``coldchain cases export-epcis SHIPMENT_REF [--output FILE]`` writes the EPCIS 2.0 JSON-LD
document of a shipment (stdout by default); ``coldchain cases report SHIPMENT_REF --output
FILE`` writes its quality report as PDF.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import StartupError


def add_commands(sub: Any) -> None:
    """Register the ``cases`` subcommands on the top-level subparsers of ``coldchain``."""
    cases = sub.add_parser("cases", help="case link: shipment exports").add_subparsers(
        dest="cases_command", required=True
    )
    export = cases.add_parser(
        "export-epcis", help="write a shipment's GS1 EPCIS 2.0 JSON-LD document"
    )
    export.add_argument("shipment_ref", metavar="SHIPMENT_REF")
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=export_epcis)
    report = cases.add_parser("report", help="write a shipment's quality report as PDF")
    report.add_argument("shipment_ref", metavar="SHIPMENT_REF")
    report.add_argument("--output", metavar="FILE", required=True, help="the PDF file to write")
    report.set_defaults(handler=write_report)


def _quality(shipment_ref: str) -> tuple[Any, str]:
    from case_link.quality import load_shipment_quality
    from core.db import connect
    from core.logging import configure_logging
    from core.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    with connect(settings.require_database_url()) as conn:
        row = conn.execute(
            "SELECT shipment_id FROM shipments WHERE shipment_ref = %s", (shipment_ref,)
        ).fetchone()
        if row is None:
            raise StartupError(f"no shipment with reference {shipment_ref!r}")
        return load_shipment_quality(conn, int(row["shipment_id"])), settings.public_url


def export_epcis(args: argparse.Namespace) -> int:
    from case_link.epcis import epcis_document
    from core.clock import SystemClock

    quality, public_url = _quality(args.shipment_ref)
    text = json.dumps(epcis_document(quality, public_url, SystemClock().now()), indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        sys.stdout.write(text + "\n")
    return 0


def write_report(args: argparse.Namespace) -> int:
    from case_link.report import render_report
    from core.clock import SystemClock

    quality, _ = _quality(args.shipment_ref)
    Path(args.output).write_bytes(render_report(quality, SystemClock().now()))
    sys.stdout.write(f"wrote the quality report of {args.shipment_ref} to {args.output}\n")
    return 0

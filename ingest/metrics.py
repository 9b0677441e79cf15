"""Prometheus metrics of the ingest (exposed on /metrics of the ingest process)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram

from ingest.service import BatchResult

RECEIVED = Counter("coldchain_ingest_messages_received_total", "MQTT/HTTP messages received")
STORED = Counter("coldchain_ingest_readings_stored_total", "Readings newly stored")
DUPLICATES = Counter("coldchain_ingest_duplicates_total", "Exact duplicate readings ignored")
CONFLICTS = Counter("coldchain_ingest_conflicts_total", "Same key, different values (recorded)")
REJECTED = Counter("coldchain_ingest_rejected_total", "Messages refused", ["reason"])
BATCH_SECONDS = Histogram("coldchain_ingest_batch_seconds", "Time to store one batch")
LAG_SECONDS = Gauge("coldchain_ingest_lag_seconds", "Receipt to commit for the oldest message")


def observe(result: BatchResult, seconds: float, oldest_received: datetime, now: datetime) -> None:
    STORED.inc(result.stored)
    DUPLICATES.inc(result.duplicates)
    CONFLICTS.inc(result.conflicts)
    for reason, count in result.rejected.items():
        REJECTED.labels(reason=reason).inc(count)
    BATCH_SECONDS.observe(seconds)
    LAG_SECONDS.set((now - oldest_received).total_seconds())

"""MQTT (and HTTP) telemetry into PostgreSQL/TimescaleDB: lossless, idempotent."""

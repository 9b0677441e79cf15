"""Shared spine of the cold-chain system: settings, database, clock, logging, HTTP, CLI."""

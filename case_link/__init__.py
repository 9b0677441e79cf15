"""Shipments tied to patient cases; physician receipt and follow-up (DESIGN.md §8)."""

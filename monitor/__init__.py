"""Excursion detection against each drug's storage profile (DESIGN.md §6)."""

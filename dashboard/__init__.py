"""Plotly Dash dashboard for logistics, QA and the clinical team."""

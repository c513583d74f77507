"""Headless rendering of the analysis: a text table and JSON. Never imports Textual."""

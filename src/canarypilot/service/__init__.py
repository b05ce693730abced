"""canarypilot.service (being built)."""

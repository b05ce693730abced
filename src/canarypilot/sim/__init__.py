"""canarypilot.sim (being built)."""

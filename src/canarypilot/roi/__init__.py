"""canarypilot.roi (being built)."""

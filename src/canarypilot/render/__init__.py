"""canarypilot.render (being built)."""

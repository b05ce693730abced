"""canarypilot.demo (being built)."""

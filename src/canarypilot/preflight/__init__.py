"""canarypilot.preflight (being built)."""

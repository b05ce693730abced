"""canarypilot.rollout (being built)."""

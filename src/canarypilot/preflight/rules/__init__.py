"""The rules, one module per concern; importing this package registers them all in ``RULES``."""

from canarypilot.preflight.rules import analysis, capacity, scaling, traffic

__all__ = ["analysis", "capacity", "scaling", "traffic"]

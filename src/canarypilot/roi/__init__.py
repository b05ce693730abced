"""The article's deployment cost model, reproducible and fed with measured rates.

``compute(CostInputs())`` gives the article's numbers to the cent;
``read_bench`` takes the rates from a ``canarypilot bench`` report instead.
"""

from canarypilot.roi.measured import DEFAULT_BAD_RELEASE_RATE, MeasuredRates, read_bench
from canarypilot.roi.model import CostInputs, CostReport, compute

__all__ = [
    "DEFAULT_BAD_RELEASE_RATE",
    "CostInputs",
    "CostReport",
    "MeasuredRates",
    "compute",
    "read_bench",
]

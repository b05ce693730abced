"""Where the numbers come from: Prometheus, direct scraping, or fixed values."""

from canarypilot.metrics.base import BatchMetricsProvider, MetricsProvider
from canarypilot.metrics.static import StaticMetrics

__all__ = ["BatchMetricsProvider", "MetricsProvider", "StaticMetrics"]

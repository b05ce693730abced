"""Every number that matters, once, with the article's values as defaults.

Settings come from three places, later ones winning: a YAML file, environment
variables ``CANARYPILOT_<SECTION>__<FIELD>`` (e.g. ``CANARYPILOT_PROMETHEUS__URL``,
``CANARYPILOT_SLO__MAX_LATENCY_DELTA``), and command-line flags. Unknown keys are
errors that name the key: a typo in a threshold must not silently become the
default.

The package holds three things: the section models (:mod:`.sections`), the loader
that reads YAML and the environment (:mod:`.loader`), and the PromQL syntax both the
settings and the metrics layer check (:mod:`.syntax`).
"""

from canarypilot.policy.loader import ENV_PREFIX, describe_validation_error, load_settings
from canarypilot.policy.sections import (
    BreakerPolicy,
    InterpolationPolicy,
    MonitoringPolicy,
    PrometheusSettings,
    QueryPolicy,
    RolloutPolicy,
    ScrapeSettings,
    ServiceSettings,
    Settings,
    SLOPolicy,
)
from canarypilot.policy.syntax import TEMPLATE_PLACEHOLDERS, label_matchers, parse_duration

__all__ = [
    "ENV_PREFIX",
    "TEMPLATE_PLACEHOLDERS",
    "BreakerPolicy",
    "InterpolationPolicy",
    "MonitoringPolicy",
    "PrometheusSettings",
    "QueryPolicy",
    "RolloutPolicy",
    "SLOPolicy",
    "ScrapeSettings",
    "ServiceSettings",
    "Settings",
    "describe_validation_error",
    "label_matchers",
    "load_settings",
    "parse_duration",
]

"""The settings' sections: every number that matters, once, with the article's values
as defaults. Each field carries its meaning in its description."""

from __future__ import annotations

import re
from collections.abc import Mapping
from string import Template
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from canarypilot._exceptions import ConfigError
from canarypilot.model import validate_name
from canarypilot.policy.syntax import TEMPLATE_PLACEHOLDERS, label_matchers, parse_duration


class _Section(BaseModel):
    # Strict types (`true` is not 1.0, "0.2" is not a number) and finite numbers only
    # (`.inf` as a threshold or a pause switches a safeguard off). The environment's
    # strings are read as YAML scalars first (see policy.loader).
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )


class InterpolationPolicy(_Section):
    """The article's safe-weight formula; see docs/decision-model.md."""

    min_weight: float = Field(
        5.0, ge=0, le=100, description="Lowest weight a proceeding canary gets (percent)."
    )
    max_weight: float = Field(
        100.0, ge=0, le=100, description="Highest weight the formula may give (percent)."
    )
    latency_decay: float = Field(10.0, ge=0, description="k in exp(-k * latency_delta).")
    error_slope: float = Field(20.0, ge=0, description="s in 1 - s * error_delta.")
    error_floor: float = Field(0.2, ge=0, le=1, description="Lowest value of the error factor.")
    safety_floor: float = Field(0.1, ge=0, le=1, description="Lowest value of the combined safety factor.")

    @model_validator(mode="after")
    def _ordered(self) -> InterpolationPolicy:
        if self.min_weight > self.max_weight:
            raise ValueError("min_weight must not exceed max_weight")
        return self


class SLOPolicy(_Section):
    """When a canary is bad, and when it cannot be judged yet."""

    alpha: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description=(
            "Largest probability of rolling back a canary that is within the SLO, however often it "
            "is analysed (the sequential test's error rate)."
        ),
    )
    weight_confidence: float = Field(
        0.9,
        ge=0.5,
        lt=1,
        description=(
            "Confidence of the upper bounds the safe weight and within_slo read: the weight assumes "
            "deltas as bad as the evidence allows at this confidence. Higher is more cautious and "
            "slower to promote; the rollback test's error rate is alpha whatever this is."
        ),
    )
    max_warmup_seconds: float = Field(
        180.0,
        ge=0,
        description=(
            "Longest warm-up after a weight change: a latency excess that decays is held as warm-up "
            "(not evidence) for at most this long; an excess that stops decaying, or outlasts this, "
            "is evidence. 0: no warm-up."
        ),
    )
    max_transient_seconds: float = Field(
        20.0,
        ge=0,
        description=(
            "A stall, GC pause or error burst this long on a healthy canary can never roll it back "
            "on its own: one slice of metrics can only add so much evidence, so a rollback needs "
            "ceil(this / slice) + 2 slices (4 at 15s scrapes); that is also the fastest rollback."
        ),
    )

    max_latency_delta: float = Field(
        0.15, gt=0, description="Roll back when (p99 canary - p99 stable) / p99 stable is above this."
    )
    max_error_delta: float = Field(
        0.02,
        gt=0,
        lt=1,
        description=(
            "Roll back when error rate canary - error rate stable is above this (a fraction, "
            "below 1: the difference of two rates never exceeds 1)."
        ),
    )
    min_canary_requests: float = Field(
        100,
        ge=0,
        description=(
            "Deprecated (engine v1; analysis.decide needs no request minimum: thin samples get wide "
            "bounds and small weights). Hold while the canary served fewer requests than this in the "
            "window: "
            "below ~100 the p99 is just the slowest request."
        ),
    )
    min_stable_requests: float = Field(
        1,
        ge=0,
        description=(
            "Deprecated (engine v1; analysis.decide holds while stable has no request). "
            "Hold while the stable version served fewer requests than this."
        ),
    )
    max_sample_age_seconds: float = Field(
        120.0, gt=0, description="Hold when the newest sample is older than this (stale series)."
    )
    severe_factor: float = Field(
        2.0,
        ge=1,
        description=(
            "Deprecated (engine v1; analysis.decide rolls back only on the sequential test; a severe "
            "regression reaches it sooner). A violation this many times a threshold is severe: roll "
            "back at once, when the "
            "evidence is conclusive (see confidence_z)."
        ),
    )
    confidence_z: float = Field(
        2.0,
        ge=0,
        description=(
            "Deprecated (engine v1; replaced by slo.alpha (the bounds are at confidence 1 - alpha)). "
            "Standard errors a reading must clear to count as evidence (one-sided, 2: ~97.7%): "
            "a violation counts when the canary is worse than stable by more than this many "
            "standard errors; 0 judges the point estimates alone, as the article did."
        ),
    )
    latency_tail_index: float = Field(
        4.0,
        gt=0,
        description=(
            "Deprecated (engine v1; analysis.decide measures the tail slope from stable's histogram). "
            "Assumed local tail index of the latency distribution at the quantile (the share of "
            "requests slower than x falls like x^-index): turns the binomial uncertainty of the "
            "quantile's rank into milliseconds. Lower is heavier-tailed and more cautious; a "
            "log-normal with p99 = 3.2 x median has 5.3."
        ),
    )
    latency_evidence: Literal["quantile", "exceedance", "hybrid"] = Field(
        "hybrid",
        description=(
            "Deprecated (engine v1; analysis.decide always counts canary requests beyond a bucket "
            "bound). Which latency interval the breaker reads: 'hybrid' judges violations on the "
            "order-statistic interval around the two p99s and early passes on the count of canary "
            "requests beyond the bucket bound nearest stable's p99; 'exceedance' uses the count for "
            "both; 'quantile' the order statistic for both. The count needs the histogram (the "
            "built-in queries return it); without it every setting uses the order statistic."
        ),
    )
    min_tail_requests: float = Field(
        3.0,
        ge=0,
        description=(
            "Deprecated (engine v1; analysis.decide's bounds widen on thin tails instead). A severe "
            "latency rollback, or an early advance, needs at least this many canary "
            "requests expected beyond the quantile (requests x (1 - quantile)): 3 at p99 is 300 requests."
        ),
    )


class BreakerPolicy(_Section):
    """Circuit breaker between a decision and an action."""

    consecutive_violations: int = Field(
        2,
        ge=1,
        description=(
            "Deprecated (engine v1; the sequential test accumulates evidence; "
            "slo.max_transient_seconds sets how many slices a rollback needs). Violations in a row "
            "that roll back."
        ),
    )
    warmup_seconds: float = Field(
        30.0,
        ge=0,
        description=(
            "Deprecated (engine v1; replaced by slo.max_warmup_seconds (a fading allowance, no fixed "
            "grace)). Grace after each weight change: latency-only violations judged on a window that "
            "starts "
            "within it hold and are not counted."
        ),
    )
    metrics_outage_seconds: float = Field(
        300.0, gt=0, description="Metrics unavailable for longer than this: roll back (fail toward stable)."
    )
    sign_test_windows: int = Field(
        5,
        ge=1,
        description=(
            "Deprecated (engine v1; the sequential test decides a thin canary without it). Separate "
            "windows in a row reading above a threshold that roll back even when none is "
            "beyond the noise: a canary within the SLO does so at most about half the time (5: ~3%)."
        ),
    )
    conclusive_at_once: bool = Field(
        True,
        description=(
            "Deprecated (engine v1; the sequential test rolls back as soon as the evidence reaches "
            "1/alpha). A violation whose whole confidence interval lies beyond its threshold "
            "(conclusive, with "
            "enough samples) rolls back at once instead of waiting for a second window: the second "
            "window guards against noise, and such a reading is already beyond it."
        ),
    )
    conclusive_tail_requests: float = Field(
        10.0,
        ge=0,
        description=(
            "Deprecated (engine v1; the sequential test's per-slice cap (slo.max_transient_seconds) "
            "replaces it). A conclusive latency violation rolls back at once only with at least this "
            "many canary "
            "requests expected beyond the quantile (10 at p99: 1,000 requests): the interval leans on "
            "an assumed tail shape, trusted only with a tail of some size. Errors need no minimum."
        ),
    )


class QueryPolicy(_Section):
    """How the three signals are asked of Prometheus. Templates use ``$name`` placeholders."""

    job_label: str = Field("job", description="Label that holds the service name.")
    version_label: str = Field("version", description="Label that tells the versions apart.")
    canary_version: str = Field("v2-canary", description="Version label value of the canary.")
    stable_version: str = Field("v1-stable", description="Version label value of the stable version.")
    latency_metric: str = Field(
        "http_request_duration_seconds_bucket", description="Classic histogram bucket series."
    )
    requests_metric: str = Field("http_requests_total", description="Request counter.")
    code_label: str = Field("code", description="Label holding the HTTP status code.")
    error_code_regex: str = Field("5..", description="Status codes that count as errors.")
    window: str = Field("5m", description="Range of rate() and increase(): a PromQL duration.")
    quantile: float = Field(0.99, gt=0, lt=1, description="The latency quantile compared.")
    slice_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "Length of one time slice of a step's history (the unit of evidence); never shorter "
            "than two scrape intervals, so every slice's increase() has two samples."
        ),
    )
    scrape_interval_seconds: float | None = Field(
        None,
        gt=0,
        le=3600,
        description=(
            "How often Prometheus scrapes the versions (its scrape_interval). Unset: measured "
            "from the request counter's samples every 5 minutes (15 s until there are two)."
        ),
    )
    extra_selector: str = Field(
        "", description='Extra label matchers added to every selector, e.g. namespace="prod".'
    )
    latency_template: str = Field(
        "histogram_quantile($quantile, sum by (le, $by) (rate($latency_metric{$selector}[$window])))",
        description="PromQL for the quantile per version.",
    )
    requests_template: str = Field(
        "sum by ($by) (increase($requests_metric{$selector}[$window]))",
        description="PromQL for the request count per version over the window.",
    )
    errors_template: str = Field(
        'sum by ($by) (increase($requests_metric{$selector,$code_label=~"$error_code_regex"}[$window]))',
        description="PromQL for the error count per version over the window.",
    )

    @field_validator("job_label", "version_label", "code_label")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", value):
            raise ValueError(f"{value!r} is not a Prometheus label name")
        return value

    @field_validator("latency_metric", "requests_metric")
    @classmethod
    def _metric_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", value):
            raise ValueError(f"{value!r} is not a Prometheus metric name")
        return value

    @field_validator("canary_version", "stable_version")
    @classmethod
    def _version(cls, value: str) -> str:
        try:
            return validate_name(value, what="version")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("extra_selector")
    @classmethod
    def _extra_selector(cls, value: str) -> str:
        label_matchers(value)
        return value

    @field_validator("latency_template", "requests_template", "errors_template")
    @classmethod
    def _template(cls, value: str) -> str:
        template = Template(value)
        if not template.is_valid():
            raise ValueError("has a stray $; write $$ for a literal dollar sign")
        unknown = sorted(set(template.get_identifiers()) - TEMPLATE_PLACEHOLDERS)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('$' + u for u in unknown)}; "
                f"known: {', '.join('$' + k for k in sorted(TEMPLATE_PLACEHOLDERS))}"
            )
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)


class PrometheusSettings(_Section):
    """Where the metrics live and how to talk to them (Prometheus, Thanos, Mimir, VictoriaMetrics)."""

    url: str | None = Field(
        None, description="Base URL, e.g. http://prometheus:9090. None: scrape the versions directly."
    )
    timeout_seconds: float = Field(5.0, gt=0, description="Per-request timeout.")
    retries: int = Field(
        3, ge=0, le=10, description="Retries on connection errors and 5xx (never on 4xx); at most 10."
    )
    backoff_seconds: float = Field(
        0.2, ge=0, description="First retry delay; doubles each retry, with jitter."
    )
    deadline_seconds: float = Field(
        8.0,
        gt=0,
        description=(
            "All attempts of one query, retries and their waits included, end within this: keep it "
            "below the caller's timeout (render argo sets the gate's timeoutSeconds to this + 2)."
        ),
    )
    bearer_token: str | None = Field(
        None, description="Sent as Authorization: Bearer. Never logged.", repr=False
    )
    bearer_token_file: str | None = Field(None, description="File holding the bearer token.")
    basic_auth_user: str | None = Field(None, description="Basic auth user name.")
    basic_auth_password: str | None = Field(
        None, description="Basic auth password. Never logged.", repr=False
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers, e.g. X-Scope-OrgID for Mimir."
    )
    ca_bundle: str | None = Field(None, description="CA bundle file for TLS.")
    tls_verify: bool = Field(True, description="Verify TLS certificates.")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if value:
            parts = urlsplit(value)
            try:
                port = parts.port
            except ValueError:  # out of range, or not a number
                port = 0
            if port == 0:
                raise ValueError("has a port that is not a number from 1 to 65535")
            if not parts.hostname:
                raise ValueError("names no host")
        return value.rstrip("/") if value else value

    def __repr_args__(self) -> Any:
        # Settings get logged and printed: no password from the URL, no Authorization header.
        for name, value in super().__repr_args__():
            if name == "url" and isinstance(value, str) and "@" in value.partition("://")[2].split("/")[0]:
                scheme, _, rest = value.partition("://")
                value = f"{scheme}://***@{rest.split('@', 1)[1]}"
            elif name == "headers" and isinstance(value, dict):
                value = {k: "***" if k.lower() == "authorization" else v for k, v in value.items()}
            yield name, value


class ScrapeSettings(_Section):
    """The embedded scraper: reads the versions' /metrics directly when no Prometheus URL is set."""

    targets: dict[str, list[str]] = Field(
        default_factory=dict,
        description="/metrics addresses per version label, e.g. {v1-stable: [10.0.0.5:8080]}.",
    )
    interval_seconds: float = Field(15.0, gt=0, description="Time between two scrapes of a target.")
    timeout_seconds: float = Field(10.0, gt=0, description="Give up on a scrape after this long.")
    retention_seconds: float = Field(
        3600.0, gt=0, description="Samples older than this are forgotten; must cover the query window."
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="A /metrics answer larger than this is a failed scrape."
    )
    max_series: int = Field(20_000, gt=0, description="Series kept at most; new ones beyond are dropped.")


class RolloutPolicy(_Section):
    """How a rollout driven by canarypilot progresses."""

    pauses_seconds: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [60.0, 90.0, 120.0, 180.0],
        min_length=1,
        description=(
            "Longest stay at each weight (the article's schedule); analyses run throughout and a "
            "conclusive pass advances earlier. After the last step passes, promote."
        ),
    )
    max_growth_factor: float = Field(2.0, ge=1, description="A step may at most multiply the weight by this.")
    min_growth_factor: float = Field(
        1.25,
        ge=1,
        description=(
            "A step must at least multiply the weight by this, else the weight holds: each change "
            "restarts the step's evidence, so creeping up by a point at a time would never finish."
        ),
    )
    scrape_lag_seconds: float = Field(
        15.0, ge=0, description="How far metrics lag behind traffic; the window guard discounts it."
    )
    min_window_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "Least part of the analysis window older than scrape_lag_seconds (published samples): "
            "two scrapes at the default 15s interval, so rate() has two samples. Shorter: wait."
        ),
    )
    analysis_interval_seconds: float = Field(
        15.0,
        gt=0,
        description=(
            "Analyse this often while a step's pause runs and while holding: one scrape interval, "
            "so each analysis sees new samples."
        ),
    )
    window_tail_requests: float = Field(
        50.0,
        ge=0,
        description=(
            "Judge the most recent window expected to hold this many canary requests beyond the "
            "quantile (50 at p99: 5,000 requests), so a regression in the middle of a step is not "
            "diluted by older traffic; 0: always the longest window allowed."
        ),
    )
    bake_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "Never promote to 100% before this share of the schedule (the sum of pauses_seconds) "
            "has run, however conclusive the evidence: some regressions come with time (a leak, "
            "a cron job, a cache expiring). 0.5 of the article's 450 s: 225 s."
        ),
    )
    early_advance: bool = Field(
        True,
        description=(
            "Advance before the step's pause has elapsed when an analysis shows the canary "
            "conclusively within the SLO (upper confidence bounds below both thresholds)."
        ),
    )
    max_duration_seconds: float | None = Field(
        None,
        gt=0,
        description="Roll back when the rollout has not finished after this long (None: no limit).",
    )
    control_poll_seconds: float = Field(
        1.0, gt=0, description="While waiting, look for pause/resume/abort/promote commands this often."
    )
    router_retries: int = Field(
        5,
        ge=0,
        le=100,
        description=(
            "Retries of a router change that failed (a rollback retries this often too); at most 100."
        ),
    )
    router_backoff_seconds: float = Field(
        0.05, ge=0, description="First delay between router retries; doubles each retry."
    )


class MonitoringPolicy(_Section):
    """What `canarypilot render prometheus-rules | alerts | alertmanager | grafana` writes."""

    rule_namespace: str = Field(
        "canarypilot",
        description=(
            "Prefix of recorded series (canarypilot:canary_latency_delta): the colon keeps them apart "
            "from the analysis service's own canary_* gauges."
        ),
    )
    low_weight_below: float = Field(
        15.0, ge=0, le=100, description="CanaryWeightExceeded fires when the safe weight stays below this."
    )
    low_weight_for: str = Field("30s", description="... for longer than this (a PromQL duration).")
    slo_violation_for: str = Field("1m", description="CanarySLOViolation fires after a breach this long.")
    metrics_missing_for: str = Field(
        "2m", description="CanaryMetricsMissing fires when a canary takes traffic without data this long."
    )
    analyzer_job: str = Field("canarypilot", description="Prometheus job of the analysis service.")
    analyzer_down_for: str = Field("1m", description="CanaryAnalyzerDown fires after this long.")
    service_label: str = Field(
        "service", description="Label naming the service on canarypilot's own metrics (applied weight)."
    )
    runbook_url: str = Field(
        "https://runbooks.example.com/canarypilot",
        description="Base URL of your runbooks (replace the placeholder); /<alert name> is appended.",
    )
    pool_utilisation_query: str = Field(
        "sum by ($version_label) (go_sql_stats_connections_in_use{$selector}) / "
        "sum by ($version_label) (go_sql_stats_connections_max_open{$selector})",
        description="PromQL for connection-pool utilisation per version (0-1) on the dashboard.",
    )

    @field_validator("low_weight_for", "slo_violation_for", "metrics_missing_for", "analyzer_down_for")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("analyzer_job")
    @classmethod
    def _job(cls, value: str) -> str:
        try:
            return validate_name(value, what="analyzer job")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("rule_namespace", "service_label")
    @classmethod
    def _identifier(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", value):
            raise ValueError(f"{value!r} is not a Prometheus label or metric name part")
        return value


class ServiceSettings(_Section):
    """The analysis service (`canarypilot serve`): caching, batching, limits, access."""

    cache_ttl_seconds: float = Field(
        5.0, ge=0, description="A decision is reused this long (0: every request asks Prometheus)."
    )
    batch_window_seconds: float = Field(
        0.005,
        ge=0,
        le=1,
        description="Analyses of different services asked within this window share one set of queries.",
    )
    max_body_bytes: int = Field(16384, ge=256, description="Largest POST /analyze body accepted (413 above).")
    token_file: str | None = Field(
        None, description="File holding the bearer token /analyze requires (none: no token needed)."
    )
    ready_within_seconds: float = Field(
        60.0, gt=0, description="/healthz is ready while Prometheus answered within this many seconds."
    )
    drain_seconds: float = Field(
        20.0, ge=0, description="On SIGTERM, wait this long for in-flight requests before exiting."
    )
    step_lookback_seconds: float = Field(
        1800.0,
        gt=0,
        le=86400,
        description=(
            "How far back the gate looks for the start of the current step (found from the "
            "canary's share of requests) when Argo does not pass it."
        ),
    )
    max_tracked_services: int = Field(
        1000, ge=1, description="Services with per-service gauges on /metrics (bounds cardinality)."
    )
    max_connections: int = Field(
        200, ge=1, description="Open connections served at once; requests beyond get 503 at once."
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A request's line and headers must arrive within this, or the connection is closed.",
    )
    max_header_bytes: int = Field(
        16384, ge=1024, description="Largest request line plus headers accepted (400 above)."
    )
    keepalive_seconds: float = Field(
        5.0, gt=0, description="An idle connection between two requests is closed after this."
    )


class Settings(_Section):
    """All settings. Each section is documented in README.md, "Configuration"."""

    interpolation: InterpolationPolicy = Field(default_factory=InterpolationPolicy)
    slo: SLOPolicy = Field(default_factory=SLOPolicy)
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    query: QueryPolicy = Field(default_factory=QueryPolicy)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    scrape: ScrapeSettings = Field(default_factory=ScrapeSettings)
    rollout: RolloutPolicy = Field(default_factory=RolloutPolicy)
    monitoring: MonitoringPolicy = Field(default_factory=MonitoringPolicy)
    service: ServiceSettings = Field(default_factory=ServiceSettings)

    def merged(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with ``overrides`` (nested dicts, ``None`` values ignored) applied and validated."""
        from canarypilot.policy.loader import merge_overrides

        return merge_overrides(self, overrides)

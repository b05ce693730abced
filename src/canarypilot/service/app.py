"""The analysis service as an ASGI app: /analyze, /healthz, /livez, /metrics.

``create_app`` takes a metrics provider and the settings and opens no socket; the
``serve`` command runs it under uvicorn, the tests under a real uvicorn on a free
port. Every answer is JSON. The HTTP status says who must act:

====  =====================================================================
200   a decision (proceed, hold or rollback), with ``gate`` when a target
      weight was asked; Argo reads it with jsonPath and its conditions
401   the bearer token is missing or wrong
404   no such path; 405: method not allowed
413   the body is larger than ``service.max_body_bytes``
422   a parameter is unknown or malformed; ``field`` names it
502   Prometheus rejected the query (a configuration problem)
503   Prometheus is unreachable or failing; retry (Argo: measurement Error)
500   a bug; the body carries the request id to find the log line, no trace
====  =====================================================================
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from canarypilot._exceptions import MetricsUnavailable, PermanentError, TemporaryError
from canarypilot.analysis.ladder import WEIGHT_TOLERANCE, next_rung
from canarypilot.api import verdict
from canarypilot.clock import Clock, SystemClock
from canarypilot.metrics.base import MetricsProvider
from canarypilot.metrics.history import Slicing, StepQuery
from canarypilot.model import Action, Verdict
from canarypilot.policy import Settings
from canarypilot.service.coalescing import Analyzer, Judged
from canarypilot.service.requests import InvalidRequest, from_body, from_query
from canarypilot.service.telemetry import ServiceMetrics
from canarypilot.service.tracing import RequestContext, RequestTracing, request_id_of

log = logging.getLogger("canarypilot.service")

_USERINFO = re.compile(r"//[^/@\s]+@")


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def gate(verdict: Verdict, weight: float, target_weight: float, settings: Settings) -> str:
    """``pass`` when the canary may take ``target_weight`` now, ``fail`` when it must be
    rolled back, ``wait`` otherwise: the controller's rule (``analysis.ladder``) applied to
    Argo's fixed next rung. It passes when the verdict proceeds and the ladder would let
    the canary climb from its current ``weight`` at least to the rung (to 100 %: shown
    within the SLO); a hold, or a rung above the safe weight or the growth cap, waits."""
    if verdict.action is Action.ROLLBACK:
        return "fail"
    if verdict.action is not Action.PROCEED or verdict.weight is None:
        return "wait"
    evidence = verdict.decision.evidence
    rung = next_rung(
        weight, verdict.weight, settings, within_slo=evidence is not None and evidence.within_slo
    )
    if target_weight >= 100.0:
        return "pass" if rung.promote else "wait"
    return "pass" if rung.promote or rung.weight >= target_weight - WEIGHT_TOLERANCE else "wait"


def create_app(
    provider: MetricsProvider,
    settings: Settings | None = None,
    *,
    token: str | None = None,
    clock: Clock | None = None,
    owns_provider: bool = False,
) -> Starlette:
    """The ASGI app. ``token``: the bearer token /analyze requires (None: none).
    ``owns_provider``: close the provider (``aclose``) when the app shuts down."""
    settings = settings or Settings()
    clock = clock or SystemClock()
    conf = settings.service
    analyzer = Analyzer(
        provider,
        judge=lambda history: verdict(history, settings),
        slicing=Slicing.from_settings(settings),
        ttl_seconds=conf.cache_ttl_seconds,
        batch_window_seconds=conf.batch_window_seconds,
        clock=clock,
    )
    metrics = ServiceMetrics(max_tracked_services=conf.max_tracked_services)
    expected = f"Bearer {token}".encode() if token else None

    def refuse(request: Request, status: int, error: str, **extra: Any) -> Response:
        metrics.rejected.labels(str(status)).inc()
        body = {"status": "error", "error": error, **extra, "request_id": request_id_of(request.scope)}
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return json_response(body, status, headers)

    def backend_failure(
        request: Request,
        status: int,
        kind: str,
        error: str,
        exc: Exception,
        headers: dict[str, str] | None = None,
    ) -> Response:
        metrics.backend_errors.labels(kind).inc()
        detail = _scrub(str(exc))
        log.warning(error, extra={**_ids(request), "error": detail})
        return json_response(
            {"status": "error", "error": error, "detail": detail, **_ids(request)}, status, headers
        )

    async def analyze(request: Request) -> Response:
        started = time.perf_counter()
        if expected is not None:
            given = request.headers.get("authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected):
                return refuse(request, 401, "missing or wrong bearer token")
        try:
            if request.method == "POST":
                if request.query_params:
                    raise InvalidRequest(
                        next(iter(request.query_params)), "POST /analyze takes its fields in the JSON body"
                    )
                raw = await _read_body(request, conf.max_body_bytes)
                if raw is None:
                    return refuse(request, 413, f"body larger than {conf.max_body_bytes} bytes")
                asked = from_body(raw, settings.query)
            else:
                asked = from_query(request.query_params.multi_items(), settings.query)
        except InvalidRequest as exc:
            return refuse(request, 422, exc.message, field=exc.field)
        RequestContext.of(request.scope).service = asked.target.service
        step = StepQuery(asked.target, asked.weight, asked.since)
        try:
            judged = await analyzer.verdict(step)
        except TemporaryError as exc:  # unreachable or failing: Argo retries an Error
            error = "metrics backend unavailable" if isinstance(exc, MetricsUnavailable) else "backend failed"
            retry = {"Retry-After": str(max(1, round(exc.delay or 1)))}
            return backend_failure(request, 503, "unavailable", error, exc, retry)
        except PermanentError as exc:  # the query was refused: a configuration problem
            return backend_failure(request, 502, "rejected", "metrics backend rejected the query", exc)
        decision = judged.verdict.decision
        metrics.observe(decision, time.perf_counter() - started)
        if asked.target_weight is None:
            return Response(_encoded(judged), media_type="application/json")
        out = _body(judged)
        out["target_weight"] = asked.target_weight
        out["gate"] = gate(judged.verdict, judged.weight, asked.target_weight, settings)
        return json_response(out)

    async def healthz(request: Request) -> Response:
        now = clock.now()
        last = analyzer.last_success
        stale = last is None or now - last > conf.ready_within_seconds
        if stale and await provider.is_online():
            analyzer.last_success = last = now = clock.now()
        if last is not None and now - last <= conf.ready_within_seconds:
            return json_response({"status": "ready", "prometheus_answered_seconds_ago": round(now - last, 3)})
        return json_response({"status": "not ready", "error": "Prometheus has not answered recently"}, 503)

    async def livez(request: Request) -> Response:
        return json_response({"status": "alive"})

    async def metrics_page(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return refuse(request, exc.status_code, exc.detail)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("internal error", exc_info=exc, extra=_ids(request))
        return json_response({"status": "error", "error": "internal error", **_ids(request)}, 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await analyzer.aclose()
        closer = getattr(provider, "aclose", None)
        if owns_provider and closer is not None:
            await closer()

    app = Starlette(
        routes=[
            Route("/analyze", analyze, methods=["GET", "POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        middleware=[Middleware(RequestTracing)],
        lifespan=lifespan,
    )
    app.state.analyzer = analyzer
    app.state.metrics = metrics
    return app


def _body(judged: Judged) -> dict[str, Any]:
    """The decision's JSON, plus the step it judged: the canary's weight and since when."""
    out = judged.verdict.decision.to_dict()
    out["step"] = {"weight": judged.weight, "since": judged.since}
    return out


@functools.lru_cache(maxsize=1024)
def _encoded(judged: Judged) -> bytes:
    """The JSON of a verdict, encoded once however often the cache serves it."""
    return json.dumps(_body(judged), separators=(",", ":"), allow_nan=False).encode()


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (announced or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _ids(request: Request) -> dict[str, str]:
    return {"request_id": request_id_of(request.scope)}


def _scrub(text: str) -> str:
    """Error text without credentials a URL may carry (http://user:pass@host)."""
    return _USERINFO.sub("//***@", text)

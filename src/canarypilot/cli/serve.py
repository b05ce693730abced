"""`canarypilot serve`: the analysis service Argo Rollouts' Web metric provider calls.

Decisions come from Prometheus when a URL is set; otherwise from the embedded
scraper over ``--scrape`` / ``scrape.targets``, for the one ``--service`` named.
"""

from __future__ import annotations

from typing import Any

import typer

from canarypilot.cli.common import EXIT_USAGE, fail, friendly_errors, settings_from

HELP = (
    "Serve decisions over HTTP for Argo Rollouts (GET or POST /analyze), with /healthz, "
    "/livez and /metrics. Every answer is JSON: 200 a decision, 422 a bad parameter, "
    "401 a missing or wrong token, 413 a body too large, 502/503 Prometheus failed. "
    "Without a Prometheus URL it scrapes --scrape targets itself for the one --service "
    "(other services hold: no data). "
    "SIGTERM stops accepting connections, lets in-flight requests finish (service.drain_seconds), "
    "then ends the process by that signal (status 143 in a shell; Ctrl-C: 130). "
    "Exit code 2: usage or configuration error (bad flag or settings, unreadable token file, "
    "port in use)."
)


def register(app: typer.Typer) -> None:
    app.command("serve", help=HELP)(serve)


def serve(
    prometheus: str | None = typer.Option(
        None,
        "--prometheus",
        "-p",
        help="Prometheus base URL (or prometheus.url in the config).",
        envvar="CANARYPILOT_PROMETHEUS_URL",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0 in a pod)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    token_file: str | None = typer.Option(
        None, "--token-file", help="File with the bearer token /analyze requires (service.token_file)."
    ),
    cache_ttl: float | None = typer.Option(
        None, help="Seconds a decision is reused (default 5; service.cache_ttl_seconds)."
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    service: str | None = typer.Option(
        None, "--service", "-s", help="Without Prometheus: the service (job label) the scraped pods serve."
    ),
    scrape: list[str] | None = typer.Option(
        None,
        "--scrape",
        help="VERSION=HOST:PORT of a /metrics page, repeatable (replaces scrape.targets); no URL only.",
    ),
    scrape_interval: float | None = typer.Option(
        None, "--scrape-interval", help="Seconds between scrapes (default 15; scrape.interval_seconds)."
    ),
) -> None:
    overrides: dict[str, Any] = {
        "prometheus": {"url": prometheus},
        "service": {"token_file": token_file, "cache_ttl_seconds": cache_ttl},
        "scrape": {"interval_seconds": scrape_interval},
    }
    levels = {"debug": 10, "info": 20, "warning": 30, "error": 40}
    if log_level not in levels:
        fail(f"--log-level must be one of {', '.join(levels)}", EXIT_USAGE)
    with friendly_errors():
        from canarypilot._exceptions import ConfigError
        from canarypilot.cli.analyze import parse_scrape_flags

        if scrape:
            overrides["scrape"]["targets"] = parse_scrape_flags(scrape)
        settings = settings_from(config, overrides)
        if not settings.prometheus.url and not settings.scrape.targets:
            raise ConfigError(
                "no Prometheus URL and no scrape targets: pass --prometheus URL (or set prometheus.url), "
                "or --service NAME with --scrape VERSION=HOST:PORT per version (or set scrape.targets)"
            )
        if not settings.prometheus.url and service is None:
            raise ConfigError("scraping without Prometheus serves one service: pass --service NAME")
        token = _read_token(settings.service.token_file)
        _run(settings, token, host, port, levels[log_level], None if settings.prometheus.url else service)


def _read_token(path: str | None) -> str | None:
    from pathlib import Path

    from canarypilot._exceptions import ConfigError

    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read token file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if not token or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ConfigError(f"token file {path} must hold one token: printable characters, no spaces")
    return token


def _run(settings: Any, token: str | None, host: str, port: int, level: int, scraped: str | None) -> None:
    """Serve; ``scraped`` names the service when the embedded scraper replaces Prometheus."""
    import socket

    import uvicorn

    from canarypilot._exceptions import ConfigError
    from canarypilot.service import create_app
    from canarypilot.service.connections import uvicorn_limits
    from canarypilot.service.telemetry import json_logging

    json_logging(level)
    # Bind first, so a port in use is a one-line usage error and not a logged traceback.
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        provider = _provider(settings, scraped)
    except ConfigError:
        sock.close()
        raise
    app = create_app(provider, settings, token=token, owns_provider=True)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and scraped is not None:
            provider.start()  # the scrape loop lives on uvicorn's event loop
        await app(scope, receive, send)

    server = uvicorn.Server(
        uvicorn.Config(
            asgi,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.service.drain_seconds) or None,
            server_header=False,
            **uvicorn_limits(settings.service),
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _provider(settings: Any, scraped: str | None) -> Any:
    if scraped is None:
        from canarypilot.metrics.prometheus import PrometheusMetrics

        return PrometheusMetrics(settings.prometheus, settings.query)
    from canarypilot.metrics.scrape import ScrapeMetrics

    return ScrapeMetrics.from_settings(settings, service=scraped)

"""`canarypilot serve`: the analysis service Argo Rollouts' Web metric provider calls."""

from __future__ import annotations

from typing import Any

import typer

from canarypilot.cli.common import EXIT_USAGE, fail, friendly_errors, settings_from

HELP = (
    "Serve decisions over HTTP for Argo Rollouts (GET or POST /analyze), with /healthz, "
    "/livez and /metrics. Every answer is JSON: 200 a decision, 422 a bad parameter, "
    "401 a missing or wrong token, 413 a body too large, 502/503 Prometheus failed. "
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
) -> None:
    overrides: dict[str, Any] = {
        "prometheus": {"url": prometheus},
        "service": {"token_file": token_file, "cache_ttl_seconds": cache_ttl},
    }
    levels = {"debug": 10, "info": 20, "warning": 30, "error": 40}
    if log_level not in levels:
        fail(f"--log-level must be one of {', '.join(levels)}", EXIT_USAGE)
    with friendly_errors():
        settings = settings_from(config, overrides)
        from canarypilot._exceptions import ConfigError

        if not settings.prometheus.url:
            raise ConfigError("no Prometheus URL: pass --prometheus URL or set prometheus.url")
        token = _read_token(settings.service.token_file)
        _run(settings, token, host, port, levels[log_level])


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


def _run(settings: Any, token: str | None, host: str, port: int, level: int) -> None:
    import socket

    import uvicorn

    from canarypilot._exceptions import ConfigError
    from canarypilot.metrics.prometheus import PrometheusMetrics
    from canarypilot.service import create_app
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
    provider = PrometheusMetrics(settings.prometheus, settings.query)
    app = create_app(provider, settings, token=token, owns_provider=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.service.drain_seconds) or None,
            limit_concurrency=None,
            server_header=False,
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()

"""Reading settings: a YAML file, then ``CANARYPILOT_<SECTION>__<FIELD>`` variables, then
flags, validated once into :class:`Settings`, with errors that name the key or variable."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, get_args

from pydantic import ValidationError

from canarypilot._exceptions import ConfigError
from canarypilot.policy.documents import load_yaml
from canarypilot.policy.sections import Settings

ENV_PREFIX = "CANARYPILOT_"


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from a YAML file, then the environment, then ``overrides`` (flags).

    ``environ`` defaults to ``os.environ``; pass ``{}`` to ignore the environment.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        data = _read_yaml(Path(path))
        source = str(path)
    env = os.environ if environ is None else environ
    env_data, origins = _from_environ(env)
    if env_data:
        _deep_update(data, env_data)
        source = f"{source} + environment" if path else "environment"
    if overrides:
        _deep_update(data, _drop_none(overrides))
        # A flag given on top of a variable is what is wrong, not the variable.
        origins = {k: v for k, v in origins.items() if not _has_path(overrides, k.split("."))}
    return _validate(data, source=source, origins=origins)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    loaded = load_yaml(text, f"config file {path}")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded


def _from_environ(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Nested settings from ``CANARYPILOT_<SECTION>__<FIELD>`` variables, and which
    variable set each dotted key (so an error names the variable, not the key)."""
    out: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, value in sorted(environ.items()):
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} conflicts with another")
        node[path[-1]] = _env_value(path, value)
        origins[".".join(path)] = key
    return out, origins


def _env_value(path: list[str], raw: str) -> Any:
    # A variable is read as YAML ("0.2" -> 0.2, "true" -> True, "[60, 90]",
    # "{X-Scope-OrgID: tenant}") unless its field holds text, so a token such as
    # "12345" stays a string; the settings' strict types then check the value.
    annotation: Any = Settings
    for part in path:
        fields = getattr(annotation, "model_fields", {})
        if part not in fields:
            return raw
        annotation = fields[part].annotation
    if annotation is str or (isinstance(annotation, UnionType) and str in get_args(annotation)):
        return raw
    try:
        return load_yaml(raw, "environment")
    except ConfigError:
        return raw


def _validate(data: Mapping[str, Any], *, source: str, origins: Mapping[str, str] | None = None) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid settings ({source}): " + describe_validation_error(exc, origins)
        ) from None


def describe_validation_error(exc: ValidationError, origins: Mapping[str, str] | None = None) -> str:
    """Every problem as ``dotted.key: message``; an unknown key says so, and a key set by an
    environment variable (``origins``: dotted key -> variable) names the variable."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        variable = next((var for key, var in (origins or {}).items() if _related(where, key)), None)
        if variable:
            where = f"{where} (from {variable})"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(f"{where}: {msg}")
    return "; ".join(problems)


def _deep_update(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value


def _related(a: str, b: str) -> bool:
    """Whether one dotted key is the other or lies beneath it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _has_path(data: Mapping[str, Any], path: list[str]) -> bool:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or node.get(part) is None:
            return False
        node = node[part]
    return True


def _drop_none(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out


def merge_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    """``settings`` with ``overrides`` (nested dicts, ``None`` values ignored) applied and validated."""
    data = settings.model_dump()
    _deep_update(data, _drop_none(overrides))
    return _validate(data, source="flags")

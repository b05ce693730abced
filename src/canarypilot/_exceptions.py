"""Every error canarypilot raises, split by what the caller must do about it.

The tree::

    CanaryPilotError                 base of everything below
    ├── ConfigError                  give up now: the settings or the input are wrong (exit 2)
    ├── TemporaryError(delay=…)      retry later (after ``delay``, from Retry-After, if set): a
    │                                backend did not answer, or answered 5xx or 429
    │   ├── MetricsUnavailable       the metrics backend is unreachable or failing (exit 1)
    │   └── RouterUnavailable        the traffic router did not answer
    └── PermanentError               give up now: retrying the same call cannot help
        ├── QueryError               the metrics backend rejected a query (it carries the query)
        ├── RouterError              the traffic router refused a change
        └── StateError               the persisted rollout state is unusable

A bad canary is not an exception: it is a ``Decision`` whose status is ``rollback``.

Third-party errors (httpx, subprocess, sqlite) are wrapped in these with
``raise … from exc`` so callers never catch another library's exceptions, and
:func:`canarypilot.retry.retrying` retries a ``TemporaryError`` only.
"""

from __future__ import annotations


class CanaryPilotError(Exception):
    """Base class of every error canarypilot raises on purpose."""


class ConfigError(CanaryPilotError):
    """The settings, a flag or an input file is wrong; fix it and try again."""


class TemporaryError(CanaryPilotError):
    """A dependency failed in a way that may pass; retry later.

    ``delay`` is how long the dependency asked to be left alone (HTTP ``Retry-After``),
    when it said; ``None``: the caller's own backoff decides (see :mod:`canarypilot.retry`).
    """

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class MetricsUnavailable(TemporaryError):
    """The metrics backend is unreachable, timed out, or answered with a server error."""


class RouterUnavailable(TemporaryError):
    """The traffic router did not answer; the weight it holds is unknown."""


class PermanentError(CanaryPilotError):
    """A dependency refused the request; sending it again will not help."""


class QueryError(PermanentError):
    """The metrics backend rejected a query. ``query`` is the text that was sent."""

    def __init__(self, message: str, *, query: str = "") -> None:
        super().__init__(f"{message} (query: {query})" if query else message)
        self.query = query


class RouterError(PermanentError):
    """The traffic router refused a change (bad config, rejected command)."""


class StateError(PermanentError):
    """The rollout state directory is missing, corrupt, or owned by another rollout."""

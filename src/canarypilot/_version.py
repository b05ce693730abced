"""The one version string: ``pyproject.toml``'s, as installed (``importlib.metadata``).

The package's ``__version__``, the container image tag (``make image``) and the
analyzer image ``render argo`` writes all come from here, so a release bumps one line.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("canarypilot")
except PackageNotFoundError:  # pragma: no cover - a source tree on sys.path without an install
    __version__ = "0+unknown"

#: The analysis service's image as ``make image`` tags it.
IMAGE = f"canarypilot:{__version__}"

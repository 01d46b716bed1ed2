"""Production over SSH: the verified connection, the release upload and the host's own preflight checks."""

from .checks import preflight_checks
from .connect import connect
from .release import prepare_release

__all__ = ["connect", "prepare_release", "preflight_checks"]

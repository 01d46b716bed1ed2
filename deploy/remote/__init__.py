"""Production over SSH: the verified connection, the release directories and the host's own preflight checks."""

from .connect import connect

__all__ = ["connect"]

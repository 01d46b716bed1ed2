"""Deploy tasks for the reference app. Your own project's tasks.py looks the same."""

from deploy.tasks import ns

__all__ = ["ns"]

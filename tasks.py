"""Deploy tasks for the reference app. Your own project's tasks.py looks the same."""

from droplet_deploy.tasks import ns

__all__ = ["ns"]

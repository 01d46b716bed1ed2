"""Composable Invoke tasks that build, verify and deploy a docker-compose app with its revision proven."""

__version__ = "0.1.0"

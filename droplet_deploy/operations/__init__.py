"""Day two on a deployed environment: status, logs, a one-off command, start/stop, restart, clearing a lock."""

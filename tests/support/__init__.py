"""Real services the tests start, use and stop themselves (no mocks where the real thing can run)."""

"""Adopting an existing app: its compose file deploys as it is (the toolkit owns the proxy), and ``inv init``."""

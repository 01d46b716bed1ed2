"""deploy-demo: the reference service the deploy toolkit builds, ships and health-checks (stdlib only)."""

NAME = "deploy-demo"

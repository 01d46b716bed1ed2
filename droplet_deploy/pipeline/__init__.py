"""The changes that put a release in service, each one transaction: deploy (release, preflight, backup, build, verify.build, pre_switch hooks, rollout, prune) and rollback."""

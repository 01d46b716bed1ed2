"""A host over SSH: the verified connection (connect, known_hosts), shipping a release to it (ship) and its own
preflight checks."""

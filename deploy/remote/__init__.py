"""Production over SSH: the verified connection, the release directories and the host's own preflight checks."""

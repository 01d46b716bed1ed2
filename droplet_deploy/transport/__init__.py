"""Where commands run: this machine (Invoke) or a host over one SSH connection (Fabric); the one place argv becomes shell text."""

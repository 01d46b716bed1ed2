"""Pure builders: each function returns the argv of one command. No I/O here, so plans print and test cleanly."""

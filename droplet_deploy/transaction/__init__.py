"""The frame every change runs in: the deploy lock, the release history, the hooks around a release, the files kept per release and what retention must spare."""

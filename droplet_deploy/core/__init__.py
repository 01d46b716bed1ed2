"""What every layer uses: settings, one error family, masking of secrets, signals handled as Ctrl-C, the reporter, number validation, release ids."""

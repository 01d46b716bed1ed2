"""Backups you can restore: create, list, verify, prune, download, restore."""

from droplet_deploy.backup import copies
from droplet_deploy.backup.create import Summary, create
from droplet_deploy.backup.restore import Restored, restore
from droplet_deploy.backup.store import Listing, download, listing, prune, read
from droplet_deploy.backup.verify import Check, verify, verify_local

__all__ = ["Check", "copies", "Listing", "Restored", "Summary", "create", "download", "listing", "prune",
           "read", "restore", "verify", "verify_local"]

"""Backups you can restore: create, list, verify, prune, download, restore, and the pipeline's backup step."""

from .create import Summary, create
from .hook import backup_hook, wanted
from .restore import Restored, restore
from .store import Listing, download, listing, prune, read
from .verify import Check, verify, verify_local

__all__ = ["Check", "Listing", "Restored", "Summary", "backup_hook", "create", "download", "listing", "prune",
           "read", "restore", "verify", "verify_local", "wanted"]

"""A repository made ready for deploys: `init` (detect, write the config) and `doctor` (every check a deploy makes, changing nothing)."""

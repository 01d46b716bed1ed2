"""``python -m droplet_deploy``: the ``droplet-deploy`` command."""

from droplet_deploy.cli import main

if __name__ == "__main__":
    main()

"""``droplet-deploy notify``, a post_deploy hook (deploy.hooks.post_deploy): POST the deploy's result to a chat
webhook.

The webhook URL comes from the environment, DEPLOY_WEBHOOK_URL (in CI/CD a secret of the `production`
environment), never from a command line or a config file. Without it this does nothing and exits 0, so a deploy
from a laptop sends nothing. The body is JSON with a `text` line (what Slack, Mattermost, Rocket.Chat and
Discord's /slack endpoint show) and the facts as fields; the URL is never printed.

Standard library only: it runs wherever `inv` runs.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

FIELDS = ("action", "result", "revision", "env", "host", "duration", "reason")
TIMEOUT = 10  # seconds; the toolkit stops the hook after hooks.post_deploy_timeout anyway


def facts(environ: dict[str, str]) -> dict[str, str]:
    return {name: environ.get(f"DEPLOY_{name.upper()}", "") for name in FIELDS}


def message(found: dict[str, str], repository: str = "", run_url: str = "") -> dict[str, str]:
    verb = {"ok": "succeeded", "failed": "FAILED", "interrupted": "was interrupted"}.get(found["result"],
                                                                                         found["result"])
    where = f" of {repository}" if repository else ""
    text = (f"{found['action'] or 'deploy'}{where} {found['revision'][:12]} to {found['env']} on {found['host']} "
            f"{verb} after {found['duration']}s")
    if found["reason"]:
        text += f": {found['reason']}"
    if run_url:
        text += f" ({run_url})"
    return {"text": text, **found}


def main() -> int:
    url = os.environ.get("DEPLOY_WEBHOOK_URL", "").strip()
    if not url:
        print("droplet-deploy notify: DEPLOY_WEBHOOK_URL is not set; no notification sent")
        return 0
    server, repository = os.environ.get("GITHUB_SERVER_URL", ""), os.environ.get("GITHUB_REPOSITORY", "")
    run = os.environ.get("GITHUB_RUN_ID", "")
    run_url = f"{server}/{repository}/actions/runs/{run}" if server and repository and run else ""
    body = json.dumps(message(facts(dict(os.environ)), repository, run_url)).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        print(f"droplet-deploy notify: the webhook answered HTTP {exc.code} {exc.reason}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"droplet-deploy notify: the webhook could not be reached: {reason}", file=sys.stderr)
        return 1
    print("droplet-deploy notify: notification sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The plan's backend + frontend shape: the toolkit's proxy routes `/` to a frontend with its own Dockerfile (its
own nginx, static files) and `/api` to the app, and a release rolls each side beside its old container, so a
first deploy and a redeploy that changes both, and the rollback, lose no request on either path under 20
requests/s each.

Real Docker and Compose, the `inv` command as users run it, one stack, two deploys and a rollback.
"""

from __future__ import annotations

import pytest

from tests.conftest import PROXY_IMAGE
from tests.support import releases, stack
from tests.support.load import Load

pytestmark = pytest.mark.integration

RATE = 20
SETTLE = 1.5


def test_slash_and_api_lose_no_request_while_the_frontend_and_the_app_both_change(project):
    # The app answers only under /api now: its checks are there too.
    project.configure(environments={"test": {"frontend_service": "frontend", "frontend_port": 8080,
                                             "check_endpoints": ["/api/health"]}})
    first = stack.add_worker_and_frontend(project, PROXY_IMAGE, "frontend v1", own_proxy=False)
    planned = project.inv("--dry", "deploy.test").stdout
    assert "frontend: its image built by the toolkit (frontend/Dockerfile)" in planned
    assert project.containers(service="frontend") == [], "a dry run starts nothing"
    deployed = project.inv("deploy.test")
    assert "frontend runs " + first[:12] in deployed.stdout
    assert project.get("/").text.strip() == "frontend v1"
    assert project.health()["revision"] == first

    # As on a droplet with a small disk: preflight warns, and the deploy ends with deploy.clean's step.
    project.configure(clean_below_mb=1_000_000_000)
    project.write("frontend/index.html", "frontend v2\n")
    second = releases.one_line_change(project, "both sides")
    with Load(project.url + "/", rate=RATE, max_seconds=300) as page, \
            Load(project.url + "/api/health", rate=RATE, max_seconds=300) as api:
        result, api_report = api.during(lambda: project.inv("deploy.test"), SETTLE)
    page_report = page.report()
    assert api_report.failed == 0, api_report.describe()
    assert page_report.failed == 0, page_report.describe()
    assert page_report.requests >= RATE * 5 and api_report.last_revision() == second
    assert "rolling frontend beside its old container(s)" in result.stdout
    assert "under clean_below_mb (1000000000 MB): this deploy ends with deploy.clean" in result.stdout
    assert "==> clean " in result.stdout and "deploy.clean: " in result.stdout
    assert project.get("/").text.strip() == "frontend v2"
    (front,) = stack.containers(project, "frontend")
    assert front["revision"] == second and stack.revisions(project, "worker") == {second}

    # deploy.restart rolls the frontend too: it takes the traffic at /.
    with Load(project.url + "/", rate=RATE, max_seconds=300) as page:
        restarted, page_report = page.during(lambda: project.inv("deploy.restart"), SETTLE)
    assert page_report.failed == 0, page_report.describe()
    assert "frontend: a new container beside the old one, rolled like app" in restarted.stdout
    assert stack.revisions(project, "frontend") == {second}

    # The rollback brings both sides back, rolled the same way: 0 failed on either path.
    with Load(project.url + "/", rate=RATE, max_seconds=300) as page, \
            Load(project.url + "/api/health", rate=RATE, max_seconds=300) as api:
        _, api_report = api.during(lambda: project.inv("deploy.rollback"), SETTLE)
    page_report = page.report()
    assert api_report.failed == 0, api_report.describe()
    assert page_report.failed == 0, page_report.describe()
    assert project.get("/").text.strip() == "frontend v1" and project.health()["revision"] == first
    assert stack.revisions(project, "frontend") == {first} and stack.revisions(project, "worker") == {first}

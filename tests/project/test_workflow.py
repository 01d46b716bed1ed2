"""The CI/CD workflow: valid for GitHub, in the right order, production behind approval, secrets kept secret."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import yaml

from .helpers import REPO, output, run, tool

WORKFLOW = REPO / ".github" / "workflows" / "ci-cd.yml"
CHAIN = ["test", "build", "deploy-test", "deploy-prod"]
DEPLOY_JOBS = ["deploy-test", "deploy-prod"]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def jobs(workflow) -> dict[str, Any]:
    return workflow["jobs"]


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    return {name: None for name in on} if isinstance(on, list) else on


def needs(job: dict[str, Any]) -> set[str]:
    value = job.get("needs", [])
    return {value} if isinstance(value, str) else set(value)


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def scripts(job: dict[str, Any]) -> str:
    return "\n".join(step["run"] for step in steps(job) if "run" in step)


def logical_lines(script: str) -> Iterator[str]:
    """Shell lines with backslash continuations joined."""
    yield from (line.strip() for line in script.replace("\\\n", " ").splitlines() if line.strip())


def walk(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))
    else:
        yield path, node


# --- valid for GitHub ---------------------------------------------------------------------------------------


def test_workflow_validates_against_the_github_workflow_schema():
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)])
    assert result.returncode == 0, output(result)


def test_the_schema_check_rejects_a_broken_workflow(tmp_path, workflow):
    """Proves the check above really validates (offline, with the schema check-jsonschema ships)."""
    broken = yaml.safe_load(WORKFLOW.read_text())
    broken["jobs"]["build"]["stepz"] = broken["jobs"]["build"].pop("steps")
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)])
    assert result.returncode != 0, output(result)
    assert "stepz" in result.stdout + result.stderr


def test_it_runs_on_pull_requests_and_on_pushes_to_main(workflow):
    on = triggers(workflow)
    assert "pull_request" in on
    assert on["push"]["branches"] == ["main"]


def test_the_token_can_only_read(workflow):
    assert workflow["permissions"] == {"contents": "read"}


def test_actions_are_pinned_by_major_version(jobs):
    used = [step["uses"] for job in jobs.values() for step in steps(job) if "uses" in step]
    assert used, "the workflow uses actions/checkout and actions/setup-python"
    for ref in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", ref), f"{ref}: pin actions by major version, e.g. @v4"


# --- the order of things ------------------------------------------------------------------------------------


def test_jobs_run_as_a_chain_test_build_deploy_test_deploy_prod(jobs):
    assert set(CHAIN) <= set(jobs)
    assert needs(jobs["test"]) == set()
    for before, after in pairwise(CHAIN):
        assert needs(jobs[after]) == {before}, f"{after} must need {before}"


def test_the_test_job_lints_then_runs_unit_and_integration_tests(jobs):
    text = scripts(jobs["test"])
    for expected in ("ruff check .", "pytest tests/project", '-m "not integration"', "-m integration"):
        assert expected in text
    assert "docker compose version" in text, "integration tests need Compose v2 on the runner's engine"


def test_the_build_job_builds_the_revision_and_verifies_it(jobs):
    text = scripts(jobs["build"])
    assert re.search(r"^inv build$", text, re.M)
    assert "inv verify.build" in text


def test_the_test_environment_is_deployed_on_the_runner_and_checked(jobs):
    text = scripts(jobs["deploy-test"])
    assert "inv deploy.test" in text
    assert "inv health.wait" in text
    assert "environment" not in jobs["deploy-test"], "the test stack runs on the runner and needs no secrets"


def test_production_is_deployed_from_main_only_and_through_the_production_environment(jobs):
    job = jobs["deploy-prod"]
    environment = job["environment"]
    name = environment if isinstance(environment, str) else environment["name"]
    assert name == "production", "required reviewers are configured on the `production` environment"
    assert "refs/heads/main" in job["if"]
    assert "inv deploy.prod --host prod" in scripts(job)
    others = [n for n, j in jobs.items() if n != "deploy-prod" and "environment" in j]
    assert others == [], f"only deploy-prod may use a GitHub environment, not {others}"


def test_the_workflow_says_production_needs_required_reviewers():
    text = WORKFLOW.read_text()
    assert "Required reviewers" in text
    runbook = (REPO / "docs" / "DEPLOYMENT-RUNBOOK.md").read_text()
    assert "required reviewers" in runbook.lower()


def test_two_deploys_never_overlap_and_a_running_deploy_is_never_cancelled(jobs):
    for name in DEPLOY_JOBS:
        concurrency = jobs[name].get("concurrency")
        assert isinstance(concurrency, dict), f"{name} needs a concurrency group"
        assert concurrency["cancel-in-progress"] is False, f"{name}: a deploy cut off half-way keeps its lock"
        group = concurrency["group"]
        for unique in ("run_id", "run_number", "run_attempt", "github.sha", "github.event"):
            assert unique not in group, f"{name}: group {group!r} differs per run, so deploys could overlap"
    assert "${{" not in jobs["deploy-prod"]["concurrency"]["group"], "one production group for every branch"


def test_every_inv_command_names_a_task_that_exists(jobs):
    from droplet_deploy.tasks import ns

    known = set(ns.task_names) | {alias for aliases in ns.task_names.values() for alias in aliases}
    called = []
    for job in jobs.values():
        for line in logical_lines(scripts(job)):
            words = shlex.split(line, comments=True)
            while "inv" in words:
                words = words[words.index("inv") + 1:]
                task = next((w for w in words if not w.startswith("-")), None)
                called.append(task)
    assert "deploy.prod" in called
    missing = sorted({task for task in called if task not in known})
    assert missing == [], f"the workflow calls tasks that do not exist: {missing}"


# --- secrets ------------------------------------------------------------------------------------------------


def secret_env_names(workflow: dict[str, Any], job: dict[str, Any], step: dict[str, Any]) -> set[str]:
    names = set()
    for scope in (workflow, job, step):
        for key, value in (scope.get("env") or {}).items():
            if "secrets." in str(value):
                names.add(key)
    return names


def test_secrets_reach_steps_only_through_environment_variables(workflow):
    used = [(path, value) for path, value in walk(workflow) if isinstance(value, str) and "secrets." in value]
    assert used, "deploy-prod reads its SSH material from secrets"
    for path, _ in used:
        assert len(path) >= 2 and path[-2] == "env", (
            f"secret used at {'.'.join(map(str, path))}: put it in an env: mapping, never in run: or with: text")
    for job_name, job in workflow["jobs"].items():
        if job_name != "deploy-prod":
            assert "secrets." not in yaml.safe_dump(job), f"{job_name} must not see any secret"


def test_no_step_traces_commands(workflow):
    for job in workflow["jobs"].values():
        for step in steps(job):
            text = step.get("run", "") + " " + str(step.get("shell", ""))
            assert not re.search(r"set\s+-[a-z]*x|set\s+-o\s+xtrace|bash\s+-[a-z]*x", text), step.get("name")


_FILE_REDIRECT = re.compile(r"(?<![0-9&])>>?\s*(?!&|/dev/std|/dev/tty|\"?\$\{?GITHUB_)[^\s|;&]+")


def test_secret_values_only_ever_go_into_files(workflow):
    checked = 0
    for job in workflow["jobs"].values():
        for step in steps(job):
            names = secret_env_names(workflow, job, step)
            if not names or "run" not in step:
                continue
            for line in logical_lines(step["run"]):
                mentioned = [n for n in names if re.search(rf"\$\{{?{n}\b", line)]
                if not mentioned:
                    continue
                checked += 1
                if "::add-mask::" in line:
                    continue
                assert _FILE_REDIRECT.search(line) and "tee" not in line.split(), (
                    f"{', '.join(mentioned)} must only be written to a file, not printed: {line}")
    assert checked, "the SSH step writes the key and known_hosts from secrets"


def test_the_ssh_key_and_known_hosts_are_private_files_and_host_keys_are_verified(jobs):
    job = jobs["deploy-prod"]
    [step] = [s for s in steps(job) if "deploy_key" in s.get("run", "") and "PROD_SSH_KEY" in s.get("env", {})]
    script = step["run"]
    first_write = script.index("> ~/.ssh/")
    assert "umask 077" in script[:first_write], "files are created private, not chmod-ed after the fact only"
    assert re.search(r"chmod 600 .*~/\.ssh/deploy_key", script) and re.search(r"chmod 600 .*~/\.ssh/known_hosts", script)
    assert "StrictHostKeyChecking yes" in script
    assert "::add-mask::$PROD_SSH_HOST" in script
    every_script = "\n".join(scripts(j) for j in jobs.values())
    for trust_on_first_use in ("ssh-keyscan", "StrictHostKeyChecking no", "accept-new"):
        assert trust_on_first_use not in every_script, f"{trust_on_first_use}: the host key comes from a secret"
    cleanup = [s for s in steps(job) if "rm -f ~/.ssh/deploy_key" in s.get("run", "")]
    assert cleanup and "always()" in cleanup[0].get("if", ""), "the key is removed even when the deploy fails"


def test_the_production_deploy_notifies_through_its_post_deploy_hook_with_the_webhook_a_secret(jobs):
    [step] = [s for s in steps(jobs["deploy-prod"]) if "inv deploy.prod" in s.get("run", "")]
    assert step.get("env", {}).get("DEPLOY_WEBHOOK_URL") == "${{ secrets.DEPLOY_WEBHOOK_URL }}"
    assert "DEPLOY_WEBHOOK_URL" not in step["run"], "the URL reaches the hook through the environment only"
    prod = yaml.safe_load((REPO / "invoke.yaml").read_text())["deploy"]["environments"]["prod"]
    assert prod["hooks"]["post_deploy"] == [["droplet-deploy", "notify"]]
    script = (REPO / "droplet_deploy" / "notify.py").read_text()
    assert 'os.environ.get("DEPLOY_WEBHOOK_URL"' in script and "return 0" in script, "skipped when the secret is empty"

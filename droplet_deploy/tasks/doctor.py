"""`inv doctor` (and `droplet-deploy doctor`): every check a deploy of one environment makes, changing nothing."""

from __future__ import annotations

from invoke import Exit, task

from droplet_deploy.tasks.flags import ENV_HELP, HOST_HELP, clean_errors


@task(help={"env": ENV_HELP, "host": HOST_HELP})
@clean_errors
def doctor(c, env=None, host=None):
    """Check the config, compose file, Dockerfile, .dockerignore, health route and target; change nothing."""
    from droplet_deploy.engines import open_session
    from droplet_deploy.session import load_settings
    from droplet_deploy.setup import doctor as doctor_mod
    settings = load_settings(c, env or None, host or None)
    print(f"doctor: {settings.env}" + (f" on {settings.host}" if settings.is_remote else " on this machine"))

    def report(finding: doctor_mod.Finding) -> None:
        line = f"    {finding.label}  {finding.name:<16} {finding.detail}"
        print(line + (f"; fix: {finding.fix}" if finding.fix and not finding.ok else ""))

    found = doctor_mod.run(settings, lambda: open_session(c, settings.env, host or None), report)
    failed = [f for f in found if f.failed]
    if failed:
        raise Exit(f"doctor: {len(failed)} problem(s): {', '.join(f.name for f in failed)}; nothing was changed",
                   code=1)
    print(f"doctor: all {len(found)} checks passed; nothing was changed")

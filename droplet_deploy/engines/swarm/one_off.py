"""Pure builders of a one-off container set up as the app's tasks are (``deploy.exec``, ``pre_switch`` hooks): the
app service as a stack file will create it, and the env file ``docker run`` reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from droplet_deploy.engines.swarm.state import Service


def planned_app(stack: Mapping, stack_name: str, short: str, image: str) -> Service:
    """Pure: the app service as the stack file ``stack`` will create it, for a one-off container before the
    stack's first deploy: its environment (``docker stack deploy``'s ``$$`` escaping undone) and named volumes."""
    spec = stack["services"][short]
    external = {name for name, volume in (stack.get("volumes") or {}).items() if (volume or {}).get("external")}
    volumes = tuple(_stack_volume(v, stack_name, external) for v in spec.get("volumes") or []
                    if isinstance(v, Mapping) and v.get("type") == "volume" and v.get("source"))
    return Service(id="", name=f"{stack_name}_{short}", image=image, replicas=None, update_state=None,
                   update_message="", previous_image=None, env=_planned_env(spec.get("environment") or {}),
                   volumes=volumes)


def _planned_env(environment: Mapping | Sequence[str]) -> tuple[str, ...]:
    """``KEY=VALUE`` of a stack file's ``environment`` (a mapping or a list), with ``$$`` back to ``$``."""
    pairs = environment.items() if isinstance(environment, Mapping) else \
        (item.split("=", 1) for item in environment if "=" in item)
    return tuple(f"{key}={str(value).replace('$$', '$')}" for key, value in pairs if value is not None)


def _stack_volume(volume: Mapping, stack_name: str, external: set[str]) -> str:
    """``source:target[:ro]`` of a named volume as the stack names it (``<stack>_<name>``, unless external)."""
    source = volume["source"] if volume["source"] in external else f"{stack_name}_{volume['source']}"
    return f"{source}:{volume['target']}" + (":ro" if volume.get("read_only") else "")


def env_file_text(env: Sequence[str]) -> tuple[str, list[str]]:
    """Pure: ``KEY=VALUE`` lines for ``docker run --env-file`` (which reads one per line, literally), and the
    keys left out because their value spans lines."""
    lines, skipped = [], []
    for item in env:
        if "\n" in item or "\r" in item:
            skipped.append(item.split("=", 1)[0])
        else:
            lines.append(item)
    return "".join(f"{line}\n" for line in lines), skipped

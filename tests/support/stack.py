"""A stack beyond the app, written into a test clone: a worker on the app's image (``build: .``, like the app)
and a frontend with a Dockerfile of its own (static files behind its own nginx, non-root, health-checked)."""

from __future__ import annotations

import json
import subprocess

FRONTEND_DOCKERFILE = """\
ARG FRONT_BASE=nginx:1.27-alpine
FROM ${FRONT_BASE}
COPY nginx.conf /srv/nginx.conf
COPY index.html /srv/www/index.html
WORKDIR /srv/www
# The revision after the content: the same label the app's Dockerfile carries.
ARG REVISION=unknown
LABEL org.opencontainers.image.revision="$REVISION"
USER 65534:65534
EXPOSE 8080
CMD ["nginx", "-e", "stderr", "-c", "/srv/nginx.conf", "-g", "daemon off;"]
"""

FRONTEND_NGINX = """\
pid /tmp/nginx.pid;
error_log stderr;
events {}
http {
  access_log off;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  server { listen 8080; root /srv/www; }
}
"""

SERVICES = """\
  worker:
    build: .
    command: ["python3", "-c", "import time; time.sleep(10**6)"]
    stop_signal: SIGKILL
    healthcheck:
      disable: true  # the app image's HEALTHCHECK asks its web port, which a worker does not open

  frontend:
    build:
      context: ./frontend
      args:
        FRONT_BASE: {base}
    healthcheck:
      test: ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 2s
      retries: 30

"""


def add_worker_and_frontend(project, base_image: str, page: str = "frontend v1", *, own_proxy: bool = True) -> str:
    """The worker and the frontend in the project's test compose file; committed, the revision returned. Without
    ``own_proxy`` the file's proxy service goes: the toolkit adds its own (the frontend shape needs it)."""
    compose = project.path / "docker-compose.test.yml"
    text = compose.read_text()
    text = text.replace("\n  proxy:\n", "\n" + SERVICES.format(base=base_image) + "  proxy:\n", 1)
    if not own_proxy:
        start, end = text.index("\n  proxy:\n"), text.index("\nvolumes:\n")
        text = text[:start] + "\n" + text[end:]
    compose.write_text(text)
    project.write("frontend/Dockerfile", FRONTEND_DOCKERFILE)
    project.write("frontend/nginx.conf", FRONTEND_NGINX)
    project.write("frontend/index.html", page + "\n")
    return project.commit("a worker and a frontend")


def containers(project, service: str, env: str = "test") -> list[dict]:
    """The running containers of ``service``: id, revision label, health."""
    ids = project.containers(env, service=service)
    if not ids:
        return []
    found = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                      check=True).stdout)
    return [{"id": c["Id"], "image": c["Config"]["Image"],
             "revision": (c["Config"]["Labels"] or {}).get("org.opencontainers.image.revision"),
             "health": ((c["State"].get("Health") or {}).get("Status"))} for c in found]


def revisions(project, service: str, env: str = "test") -> set[str | None]:
    return {c["revision"] for c in containers(project, service, env)}


def frontend_page(project, env: str = "test") -> str:
    """What the running frontend serves, asked inside its container (it publishes no port)."""
    (container,) = project.containers(env, service="frontend")
    return subprocess.run(["docker", "exec", container, "curl", "-fsS", "http://127.0.0.1:8080/"],
                          capture_output=True, text=True, check=True).stdout.strip()

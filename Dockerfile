# The reference service. Stages: builder (checks the code alone), runtime (the service user), development
# (reload runner, code bind-mounted at run time) and production, the last stage and so the default target.
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t deploy-demo:<sha12> .
#
# BASE_IMAGE lets an offline machine use a locally built Debian image instead of pulling python:3.12-slim.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS builder
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv
COPY app/ /srv/app/
# .dockerignore keeps bytecode out of the context; this step keeps it out even if the ignore file changes.
RUN find /srv/app \( -name __pycache__ -o -name '*.pyc' -o -name '*.pyo' \) -prune -exec rm -rf {} + \
 && python3 -m app --check


# What both runnable stages share: the service user (numeric ids, so it is the same in every base image and on
# bind mounts) and its writable data and log directories.
FROM ${BASE_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN if command -v useradd >/dev/null 2>&1; then \
        groupadd --system --gid 10001 app \
        && useradd --system --uid 10001 --gid 10001 --home-dir /srv --no-create-home --shell /usr/sbin/nologin app; \
    else \
        echo 'app:x:10001:' >> /etc/group \
        && echo 'app:x:10001:10001::/srv:/sbin/nologin' >> /etc/passwd; \
    fi \
 && mkdir -p /data /logs \
 && chown 10001:10001 /data /logs
WORKDIR /srv


FROM runtime AS development
ENV APP_ENV=development
COPY --from=builder /srv/app /srv/app
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["python3", "-m", "app.devserver"]


FROM runtime AS production
# Code stays root-owned: the service user can read it but cannot rewrite it (or drop bytecode next to it).
COPY --from=builder /srv/app /srv/app
RUN find /srv/app \( -name __pycache__ -o -name '*.pyc' -o -name '*.pyo' \) -prune -exec rm -rf {} +

# The revision comes after every slow or code-derived layer: a new commit with unchanged code reuses them all.
ARG REVISION=unknown
LABEL org.opencontainers.image.revision="$REVISION"
ENV APP_REVISION="$REVISION"
# Prints "app ok: N routes, revision <REVISION>" in the build output; a broken import fails the build.
RUN python3 -m app --check

USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('APP_PORT', '8000'), timeout=4)"]
CMD ["python3", "-m", "app"]

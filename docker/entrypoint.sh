#!/bin/sh
# Container entrypoint of the app image. `migrate` is the one-shot service that web, api, worker and
# beat wait for (Django has no migration lock, so exactly one process migrates); `web` serves Daphne,
# `api` too as a process of the `api` role (/v1 and the probes only: docs/deploy.md, "Roles");
# `worker` and `beat` run Celery. Static files were collected into the image at build time. The
# topology test (tests/deploy/) runs this same script, with DRAGONFLY_WEB_BIND/PORT per process.
set -eu
case "${1:-web}" in
  migrate)
    python manage.py check --deploy  # nothing is migrated for a misconfigured deployment either
    exec python manage.py migrate --noinput
    ;;
  web|api)
    if [ "$1" = api ]; then
      export DRAGONFLY_ROLE=api
    fi
    # refuses a misconfigured production start (dragonfly/checks.py) or missing plans (accounts/checks.py)
    python manage.py check --deploy --database default
    # Daphne on uvloop (dragonfly/daphne.py); no access log of its own: nginx keeps one per request.
    exec python -m dragonfly.daphne -b "${DRAGONFLY_WEB_BIND:-0.0.0.0}" -p "${DRAGONFLY_WEB_PORT:-8000}" \
      --proxy-headers --verbosity 0 \
      dragonfly.asgi:application
    ;;
  worker)
    exec celery -A dragonfly worker --loglevel INFO --concurrency "${CELERY_CONCURRENCY:-4}"
    ;;
  beat)
    exec celery -A dragonfly beat --loglevel INFO --schedule "${DRAGONFLY_VAR_DIR:-/app/var}/celerybeat-schedule"
    ;;
  *)
    exec "$@"
    ;;
esac

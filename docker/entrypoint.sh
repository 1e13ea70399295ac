#!/bin/sh
# Container entrypoint: `web` migrates, collects static files and serves Daphne; `worker` and `beat`
# run Celery. Migrations run in web containers only; Django's migration lock makes two at once safe.
set -eu
case "${1:-web}" in
  web)
    python manage.py check --deploy  # refuses a misconfigured production start (dragonfly/checks.py)
    python manage.py migrate --noinput
    python manage.py collectstatic --noinput --verbosity 0
    # Daphne on uvloop (dragonfly/daphne.py); no access log of its own: nginx keeps one per request.
    exec python -m dragonfly.daphne -b 0.0.0.0 -p 8000 --proxy-headers --verbosity 0 \
      dragonfly.asgi:application
    ;;
  worker)
    exec celery -A dragonfly worker --loglevel INFO --concurrency "${CELERY_CONCURRENCY:-4}"
    ;;
  beat)
    exec celery -A dragonfly beat --loglevel INFO --schedule /app/var/celerybeat-schedule
    ;;
  *)
    exec "$@"
    ;;
esac

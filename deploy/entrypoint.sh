#!/bin/sh
# The image's entry point: one role per container (docs/deploy.md).
#   web      uvicorn, WEB_WORKERS processes (default 2), behind the proxy
#   worker   a Celery worker, WORKER_CONCURRENCY pool processes (default 2)
#   beat     THE Celery beat: run exactly one in the whole deployment
#   release  migrate, then copy the static files to /srv/static for the proxy (once per upgrade)
#   manage   python manage.py ...  (e.g. `manage createsuperuser`)
set -eu

# prometheus-client's multiprocess mode: each process writes its samples under this directory;
# it must start empty (files of a previous run would be counted again).
clean_metrics_dir() {
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
        mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
        find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
    fi
}

role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
web)
    clean_metrics_dir
    # --proxy-headers: the client's address and scheme from the proxy's X-Forwarded-* headers,
    # trusted only from FORWARDED_ALLOW_IPS (the proxy's network).
    exec uvicorn acw_site.asgi:application \
        --host 0.0.0.0 --port 8000 \
        --workers "${WEB_WORKERS:-2}" \
        --proxy-headers --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-*}" \
        --no-access-log "$@"
    ;;
worker)
    clean_metrics_dir
    exec celery -A acw_site worker --concurrency "${WORKER_CONCURRENCY:-2}" --loglevel INFO "$@"
    ;;
beat)
    exec celery -A acw_site beat --loglevel INFO --schedule /tmp/celerybeat-schedule "$@"
    ;;
release)
    python manage.py migrate --noinput
    if [ -d /srv/static ]; then
        cp -a /app/staticfiles/. /srv/static/
    fi
    echo "release: migrations applied, static files copied"
    ;;
manage)
    exec python manage.py "$@"
    ;;
*)
    exec "$role" "$@"
    ;;
esac

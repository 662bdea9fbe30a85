# ACW Watch: one image for every role (web, worker, beat, release). docs/deploy.md.
#   docker build -t acw-watch .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Runtime dependencies only (no test tools), checked against their locked hashes.
COPY requirements.txt ./
RUN pip install --require-hashes -r requirements.txt

COPY . .

# Static files collected at build time (hashed names, compressed: whitenoise serves them, and
# the release step copies them where the proxy serves them). The settings need a SECRET_KEY to
# load with DEBUG off; this one exists only during the build.
RUN SECRET_KEY=collectstatic-at-build-time-only DEBUG=0 \
        python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q acw_site agents reporting integrations audit \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin acw \
    && mkdir -p /srv/static /run/metrics \
    && chown acw:acw /srv/static /run/metrics

# Never root at run time.
USER acw

EXPOSE 8000
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["web"]

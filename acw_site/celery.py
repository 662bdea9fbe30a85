"""The Celery app (``celery -A acw_site worker --beat``).

The periodic schedule lives in django-celery-beat's tables (editable in admin); its defaults
are installed by a data migration of the ``reporting`` app.
"""

import os

from celery import Celery

from . import broker_recovery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acw_site.settings")

app = Celery("acw_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Heartbeats for /healthz and task metrics for /metrics (beat and every worker).
from . import celery_signals  # noqa: E402, F401

# A broker restart must not kill the worker (see acw_site/broker_recovery.py).
broker_recovery.install()

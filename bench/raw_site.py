"""The raw baseline of ``bench.bench_ingest``: the least a Django view can do per event here.

A minimal Django site served the same way as the product (uvicorn, the same number of workers,
the same psycopg pool): ``POST /raw/event`` stores the posted event as one row, ``POST
/raw/batch`` stores a batch's events with one multi-row INSERT. No authentication, validation,
state or publication: what the product adds on top is its cost.

    DATABASE_URL=... uvicorn bench.raw_site:application --workers 2
"""

from __future__ import annotations

import json
import os

import dj_database_url
import django
from django.conf import settings

TABLE = "bench_raw_event"
CREATE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
    "event_id varchar(100) UNIQUE NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
    "body jsonb NOT NULL)"
)

if not settings.configured:
    database = dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)
    database["OPTIONS"] = {"pool": {"min_size": 1, "max_size": 20, "timeout": 1.0}}
    settings.configure(
        DEBUG=False,
        SECRET_KEY="raw-baseline",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
        DATABASES={"default": database},
        USE_TZ=True,
    )
    django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

INSERT = f"INSERT INTO {TABLE} (event_id, body) VALUES {{rows}} ON CONFLICT DO NOTHING"


def store_event(request: HttpRequest) -> JsonResponse:
    event = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT.format(rows="(%s, %s::jsonb)"), [event["event_id"], json.dumps(event)]
        )
    return JsonResponse({"event_id": event["event_id"], "status": "accepted"}, status=201)


def store_batch(request: HttpRequest) -> JsonResponse:
    events = json.loads(request.body)["events"]
    params = [value for event in events for value in (event["event_id"], json.dumps(event))]
    with connection.cursor() as cursor:
        cursor.execute(INSERT.format(rows=", ".join(["(%s, %s::jsonb)"] * len(events))), params)
    return JsonResponse({"accepted": len(events)})


urlpatterns = [path("raw/event", store_event), path("raw/batch", store_batch)]
application = get_asgi_application()

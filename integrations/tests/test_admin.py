"""Admin pages of the integrations: status per integration with its refusals."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from integrations.models import IntegrationStatus
from integrations.services import FeedReport, record_status

pytestmark = pytest.mark.django_db


def test_the_status_page_lists_arrivals_counts_and_refusals(admin_ada: Any) -> None:
    report = FeedReport("amazon-connect", "amazon-connect", records=3, accepted=2)
    report.last_record = '{"EventType": "LOGIN"}'
    report.refuse("request r-1 record 2", "EventTimestamp: has no UTC offset", "{...}")
    record_status(report)
    client = Client()
    client.force_login(admin_ada)
    listing = client.get("/admin/integrations/integrationstatus/")
    assert listing.status_code == 200
    assert b"request r-1 record 2: EventTimestamp: has no UTC offset" in listing.content
    status = IntegrationStatus.objects.get()
    detail = client.get(f"/admin/integrations/integrationstatus/{status.pk}/change/")
    assert detail.status_code == 200
    assert b"request r-1 record 2" in detail.content
    assert (status.records, status.refused, status.events_accepted) == (3, 1, 2)
    assert status.last_arrival_at is not None


def test_only_the_newest_refusals_are_kept(admin_ada: Any, settings: Any) -> None:
    from integrations import services

    for batch in range(3):
        report = FeedReport("twilio", "twilio", records=300)
        for n in range(300):
            report.refuse(f"event {batch}-{n}", "bad", "")
        services.record_status(report)
    status = IntegrationStatus.objects.get()
    assert status.refused == 900
    kept = list(status.refusals.values_list("position", flat=True))
    assert len(kept) == services.KEEP_REFUSALS
    assert kept[0] == "event 2-299"

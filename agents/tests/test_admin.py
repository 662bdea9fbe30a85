"""Django admin: every model is configured and its pages render for an admin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from agents import services
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_data(admin_ada: Any, alice: Any) -> Client:
    services.ingest_events(
        [
            event("alice", type_, datetime(2026, 11, 20, 9, 0, n, tzinfo=UTC), **fields)
            for n, (type_, fields) in enumerate(
                [
                    ("agent.logged_in", {}),
                    ("interaction.started", {"interaction_id": "c1", "channel": "phone"}),
                    ("interaction.held", {"interaction_id": "c1"}),
                    ("interaction.resumed", {"interaction_id": "c1"}),
                    ("interaction.ended", {"interaction_id": "c1"}),
                    ("acw.ended", {"wrap_up_code": "resolved"}),
                ]
            )
        ]
    )
    client = Client()
    client.force_login(admin_ada)
    return client


def test_every_registered_model_has_working_admin_pages(admin_client_with_data: Client) -> None:
    for model in admin.site._registry:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        response = admin_client_with_data.get(changelist)
        assert response.status_code == 200, changelist
        first = model.objects.first()
        if first is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[first.pk])
            assert admin_client_with_data.get(change).status_code == 200, change


def test_the_event_log_is_read_only_in_admin(admin_client_with_data: Client) -> None:
    add = admin_client_with_data.get(reverse("admin:agents_event_add"))
    assert add.status_code == 403
    page = admin_client_with_data.get(reverse("admin:agents_event_changelist") + "?q=adm-4")
    assert b"adm-4" in page.content
    assert b"interaction.ended" in page.content


def test_a_supervisor_cannot_open_admin(supervisor_sam: Any) -> None:
    client = Client()
    client.force_login(supervisor_sam)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302

"""Integration routes (docs/integrations.md), under /api/v1/integrations/."""

from django.urls import path

from . import api

urlpatterns = [
    path("amazon-connect", api.amazon_connect, name="integration-amazon-connect"),
    path("twilio/taskrouter", api.twilio_taskrouter, name="integration-twilio-taskrouter"),
]

"""Django's messages are set up for the pages only: the API shows none (acw_site.middleware)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from acw_site.middleware import PageMessageMiddleware


def _served(path: str) -> HttpRequest:
    request = RequestFactory().get(path)
    SessionMiddleware(lambda request: HttpResponse()).process_request(request)
    PageMessageMiddleware(lambda request: HttpResponse())(request)
    return request


def test_a_page_request_can_carry_messages() -> None:
    request = _served("/kpis/")
    messages.info(request, "saved")
    assert [str(message) for message in messages.get_messages(request)] == ["saved"]


def test_an_api_request_sets_up_no_message_storage() -> None:
    request = _served("/api/v1/events")
    assert not hasattr(request, "_messages")
    assert list(messages.get_messages(request)) == []

"""Posting Django admin forms as a browser would: the page's own fields, then the changes."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from django.test import Client


class _FormFields(HTMLParser):
    """The values a browser would submit from the page's main form (``id`` ending ``_form``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, Any] = {}
        self._in_form = False
        self._select: str | None = None
        self._select_multiple = False
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields[name] = a.get("value", "on" if kind == "checkbox" else "")
        elif tag == "select" and name:
            self._select, self._select_multiple = name, "multiple" in a
            if self._select_multiple:
                self.fields[name] = []
        elif tag == "option" and self._select and "selected" in a:
            if self._select_multiple:
                self.fields[self._select].append(a.get("value", ""))
            else:
                self.fields[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def post_admin_form(client: Client, url: str, **changes: Any) -> Any:
    """GET the admin form at ``url``, change some fields, POST it back (the real admin view)."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    parser = _FormFields()
    parser.feed(page.content.decode())
    data = {**parser.fields, **changes}
    return client.post(url, {key: value for key, value in data.items() if value is not None})

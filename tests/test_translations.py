"""The French and Dutch catalogues are complete, compiled and match the code; the pages speak the
browser's language, the API stays English, and figures are written the way each language does.

docs/i18n.md describes the process these tests hold in place (``make messages``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polib
import pytest
from django.apps import apps
from django.test import Client
from django.utils import translation
from django.utils.functional import Promise

from agents import wall_links
from reporting.templatetags.kpi_format import format_count, format_duration, format_percent

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ["fr", "nl"]
DOMAINS = ["django", "djangojs"]
CATALOGUES = [(lang, domain) for lang in LOCALES for domain in DOMAINS]
# What a copy of the project for `make messages` leaves out: tools, caches, data.
NOT_SOURCE = {".git", ".venv", "staticfiles", ".run", "node_modules", "docs", "bench"}


def _po(root: Path, lang: str, domain: str) -> polib.POFile:
    return polib.pofile(str(root / "locale" / lang / "LC_MESSAGES" / f"{domain}.po"))


def _key(entry: polib.POEntry | polib.MOEntry) -> tuple[str | None, str]:
    return entry.msgctxt, entry.msgid


def _missing(po: polib.POFile) -> list[str]:
    """Entries a reader would see in English: untranslated, fuzzy or left over (obsolete)."""
    bad = [e.msgid for e in po.untranslated_entries()]
    bad += [f"fuzzy: {e.msgid}" for e in po.fuzzy_entries()]
    bad += [f"obsolete: {e.msgid}" for e in po.obsolete_entries()]
    bad += [
        f"plural form missing: {e.msgid}"
        for e in po.translated_entries()
        if e.msgid_plural and not all(e.msgstr_plural.values())
    ]
    return bad


@pytest.mark.parametrize(("lang", "domain"), CATALOGUES)
def test_every_entry_of_the_catalogue_is_translated(lang: str, domain: str) -> None:
    po = _po(ROOT, lang, domain)
    assert len(po) > 50
    assert _missing(po) == []
    assert po.metadata["Language"] == lang
    assert "nplurals=2" in po.metadata["Plural-Forms"]


@pytest.mark.parametrize(("lang", "domain"), CATALOGUES)
def test_the_committed_mo_file_is_the_compiled_catalogue(lang: str, domain: str) -> None:
    po = _po(ROOT, lang, domain)
    mo = polib.mofile(str(ROOT / "locale" / lang / "LC_MESSAGES" / f"{domain}.mo"))

    def table(entries: Any) -> dict[tuple[str | None, str], Any]:
        return {
            _key(e): (e.msgstr, tuple(sorted(e.msgstr_plural.items()))) for e in entries if e.msgid
        }

    assert table(mo) == table(po.translated_entries()), "run `make messages` and commit"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project after `make messages`: the catalogues as the code asks for them."""
    if shutil.which("xgettext") is None or shutil.which("msgfmt") is None:
        pytest.fail("GNU gettext is needed (apt-get install gettext): `make test` installs it")
    copy = tmp_path_factory.mktemp("messages") / "project"
    shutil.copytree(ROOT, copy, ignore=lambda _dir, names: [n for n in names if n in NOT_SOURCE])
    subprocess.run(
        # The Makefile's own target, with this interpreter instead of the project's .venv.
        ["make", "-s", "-o", ".venv/.stamp-run", f"PY={sys.executable}", "messages"],
        cwd=copy,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "1", "HOME": str(copy)},
    )
    return copy


@pytest.mark.parametrize(("lang", "domain"), CATALOGUES)
def test_every_string_of_the_code_is_in_the_catalogue(
    regenerated: Path, lang: str, domain: str
) -> None:
    fresh = _po(regenerated, lang, domain)
    committed = _po(ROOT, lang, domain)
    new = {_key(e) for e in fresh} - {_key(e) for e in committed}
    gone = {_key(e) for e in committed} - {_key(e) for e in fresh}
    assert not new, f"not in the catalogue (run `make messages`, translate): {sorted(new)[:10]}"
    assert not gone, f"no longer in the code (run `make messages`): {sorted(gone)[:10]}"
    assert _missing(fresh) == []


# --- Language choice ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "lang", "word"),
    [("fr-BE,fr;q=0.9", "fr", "Mot de passe"), ("nl-BE,nl;q=0.9", "nl", "Wachtwoord")],
)
def test_the_sign_in_page_follows_accept_language(accept: str, lang: str, word: str) -> None:
    page = Client().get("/accounts/login/", headers={"accept-language": accept})
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<html lang="{lang}">' in html
    assert word in html
    assert page["Content-Language"] == lang


@pytest.mark.django_db
def test_the_javascript_catalog_is_a_script_file_in_the_page_language() -> None:
    catalog = Client().get("/jsi18n/", headers={"accept-language": "nl"})
    assert catalog.status_code == 200
    assert catalog["Content-Type"].startswith("text/javascript")
    assert "Opnieuw verbinden" in catalog.content.decode()


@pytest.mark.django_db
def test_the_switcher_keeps_the_chosen_language_over_the_browsers(supervisor_sam: Any) -> None:
    client = Client()
    client.force_login(supervisor_sam)
    french_browser = {"accept-language": "fr"}
    answer = client.post(
        "/i18n/setlang/", {"language": "nl", "next": "/kpis/"}, headers=french_browser
    )
    assert answer.status_code == 302
    assert answer["Location"] == "/kpis/"
    page = client.get("/kpis/", headers=french_browser)
    assert '<html lang="nl">' in page.content.decode()


@pytest.mark.django_db
def test_the_api_answers_in_english_whatever_the_browser_says(supervisor_sam: Any) -> None:
    client = Client()
    client.force_login(supervisor_sam)
    answer = client.get("/api/v1/kpis?group_by=channel", headers={"accept-language": "fr"})
    assert answer.status_code == 200
    assert "Content-Language" not in answer
    refused = Client().get("/api/v1/agents/state", headers={"accept-language": "nl"})
    assert refused.status_code in (401, 403)
    assert "Authentication credentials were not provided" in refused.content.decode()


# --- Figures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "percent", "count"),
    [("en", "12.3 %", "12,345"), ("fr", "12,3 %", "12\u00a0345"), ("nl", "12,3 %", "12.345")],
)
def test_figures_use_the_languages_separators_and_durations_read_the_same(
    lang: str, percent: str, count: str
) -> None:
    with translation.override(lang):
        assert format_percent(0.1234) == percent
        assert format_count(12345) == count
        assert format_duration(42) == "42 s"
        assert format_duration(185) == "3:05"
        assert format_duration(3765) == "1:02:45"


@pytest.mark.django_db
def test_admin_shows_our_models_labels_help_texts_and_choices_in_french(admin_ada: Any) -> None:
    client = Client()
    client.force_login(admin_ada)
    page = client.get("/admin/agents/acwpolicy/add/", headers={"accept-language": "fr"})
    assert page.status_code == 200
    html = page.content.decode()
    for text in [
        "règle d’ACW",  # the model's name
        "Prolongation permise",  # a field's label
        "La durée maximale d’un ACW, prolongations comprises.",  # a help text
        "Minuté, strict (pas de sortie anticipée)",  # a choice
    ]:
        assert text in html.replace("&#x27;", "’")


OUR_APPS = ["agents", "reporting", "audit", "integrations"]


def test_every_field_of_our_models_has_a_translatable_label_and_help_text() -> None:
    plain = [
        f"{model.__name__}.{field.name}"
        for app in OUR_APPS
        for model in apps.get_app_config(app).get_models()
        for field in [*model._meta.fields, *model._meta.many_to_many]
        if not field.auto_created
        and not (
            isinstance(field.verbose_name, Promise)
            and (not field.help_text or isinstance(field.help_text, Promise))
        )
    ]
    assert plain == []


@pytest.mark.django_db
def test_read_only_admin_pages_show_their_labels_in_dutch(admin_ada: Any) -> None:
    wall_links.create_wall_link(admin_ada, "Lobby")  # an audit log entry to list
    client = Client()
    client.force_login(admin_ada)
    page = client.get("/admin/audit/auditentry/", headers={"accept-language": "nl"})
    assert page.status_code == 200
    html = page.content.decode()
    for text in ["Auditlog", "Tijdstip", "Naam van de uitvoerder", "Objecttype", "Velden"]:
        assert text in html, text
    assert "Actor name" not in html and "Object type" not in html

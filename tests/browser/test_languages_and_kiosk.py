"""French and Dutch pages, the language switcher, the wall on a TV (kiosk links), themes, motion,
and tile names that fit at every common screen size.

Screenshots go to a temporary directory; with ``ACW_SCREENSHOTS=1`` to ``docs/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents import wall_links

from .support import Server, log_in, seed_floor, wait_live

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENS = [(1366, 768), (1440, 900), (1920, 1080), (3840, 2160)]


def _text(page: Any, selector: str) -> str:
    return page.inner_text(selector).strip()


# --- Languages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "lang", "wall_words", "kpi_words"),
    [
        (
            "fr-FR",
            "fr",
            ["Tableau mural", "Agents en ACW", "3 sur 3 agents"],
            ["ACW moyen", "Indicateurs d’ACW", "Aujourd’hui"],
        ),
        (
            "nl-BE",
            "nl",
            ["Wallboard", "Agents in nawerktijd", "3 van 3 agents"],
            ["Gemiddelde nawerktijd", "KPI’s nawerktijd", "Vandaag"],
        ),
    ],
)
def test_the_wall_and_the_kpi_page_speak_the_browsers_language(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    north: Any,
    locale: str,
    lang: str,
    wall_words: list[str],
    kpi_words: list[str],
) -> None:
    server = live_server_up
    seed_floor(3, ["North"], seed=5)
    page = new_page(locale=locale)
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    assert page.get_attribute("html", "lang") == lang
    page.locator("#shown-count", has_text="3").wait_for()
    body = page.inner_text("body").casefold()  # some labels are set in capitals by CSS
    for word in wall_words:
        assert word.casefold() in body
    # Words written by the page's script come from the JavaScript catalog.
    live = _text(page, "#conn .conn-text")
    assert live == {"fr": "En direct", "nl": "Live"}[lang]
    page.goto(f"{server.url}/kpis/")
    body = page.inner_text("body")
    for word in kpi_words:
        assert word in body
    assert "Average ACW" not in body
    assert page.js_errors == []


def test_the_switcher_changes_the_language_and_keeps_it(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, north: Any
) -> None:
    server = live_server_up
    page = new_page(locale="en-US")
    log_in(page, server, "sam", "pw-sam", then="/kpis/")
    assert page.get_attribute("html", "lang") == "en"
    assert "Average ACW" in page.inner_text("body")
    page.click('.lang-switch button[value="fr"]')
    page.wait_for_selector("html[lang=fr]")
    assert page.url.endswith("/kpis/")
    assert "ACW moyen" in page.inner_text("body")
    assert page.get_attribute('.lang-switch button[value="fr"]', "aria-pressed") == "true"
    page.goto(f"{server.url}/")  # the choice is kept for the next page
    wait_live(page)
    assert page.get_attribute("html", "lang") == "fr"
    page.click('.lang-switch button[value="nl"]')
    page.wait_for_selector("html[lang=nl]")
    wait_live(page)
    assert "agents in nawerktijd" in page.inner_text("body").casefold()
    assert page.js_errors == []


# --- Tile names fit -------------------------------------------------------------------------

FIT = """() => [...document.querySelectorAll('.tile')].map((tile) => {
  const name = tile.querySelector('.t-name');
  const box = tile.getBoundingClientRect();
  const line = name.getBoundingClientRect();
  return {
    agent: tile.dataset.agent,
    scroll: name.scrollHeight, client: name.clientHeight,
    inside: line.top >= box.top - 0.5 && line.bottom <= box.bottom + 0.5,
    tall: line.height >= parseFloat(getComputedStyle(name).fontSize),
  };
})"""


@pytest.mark.parametrize(("width", "height"), SCREENS)
def test_tile_names_are_never_cut_off(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    north: Any,
    shots: Path,
    width: int,
    height: int,
) -> None:
    server = live_server_up
    seed_floor(20, ["North"], seed=3)
    page = new_page(width, height, color_scheme="dark")
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    page.locator(".tile").nth(19).wait_for()
    assert page.locator(".tile").count() == 20
    for density in ("comfortable", "compact"):
        page.click(f'.segmented button[data-density="{density}"]')
        page.wait_for_selector(f'#grid[data-density="{density}"]')
        tiles = page.evaluate(FIT)
        assert len(tiles) == 20
        cut = [t for t in tiles if t["scroll"] > t["client"] or not t["inside"] or not t["tall"]]
        assert cut == [], f"{density} at {width}×{height}: {cut[:3]}"
        if density == "comfortable":
            page.screenshot(path=str(shots / f"wall-{width}x{height}.png"))


# --- Kiosk: the wall on a TV ----------------------------------------------------------------


def test_a_tv_link_opens_a_read_only_wall_and_revoking_it_closes_the_screen(
    live_server_up: Server,
    new_page: Any,
    supervisor_sam: Any,
    north: Any,
    south: Any,
    shots: Path,
) -> None:
    server = live_server_up
    seed_floor(12, ["North", "South", "East"], seed=7)  # East: not sam's
    south.supervisors.add(supervisor_sam)
    # The supervisor creates the link on the page.
    page = new_page(1920, 1080)
    log_in(page, server, "sam", "pw-sam", then="/wall/links/")
    page.fill("input[name=name]", "Floor 2 TV")
    page.click("form.links-form button[type=submit]")
    url = page.get_attribute("#links-table .link-url", "href")
    assert url and "/tv/" in url

    # The screen opens it without a login, full width, read-only, for sam's teams only.
    tv = new_page(1920, 1080, color_scheme="light")
    tv.goto(f"{url}?rotate=5")
    wait_live(tv)
    assert tv.locator(".topnav").count() == 0
    assert "Floor 2 TV" in _text(tv, ".kiosk-bar")
    # One team after the other: North first, then South.
    tv.locator(".tile").nth(3).wait_for()
    assert tv.locator(".tile").count() == 4
    assert _text(tv, "#kiosk-team") == "North"
    tv.locator("#kiosk-team", has_text="South").wait_for()
    assert {t.get_attribute("data-agent") for t in tv.locator(".tile").all()} == set(
        south.agents.values_list("external_id", flat=True)
    )
    assert tv.get_attribute("html", "data-theme") == "light"  # prefers-color-scheme
    tv.click(".tile >> nth=0")
    assert not tv.evaluate("document.querySelector('#agent-dialog').open")  # no actions
    assert tv.locator("#alerts-list button").count() == 0
    cut = [t for t in tv.evaluate(FIT) if t["scroll"] > t["client"] or not t["inside"]]
    assert cut == []
    tv.screenshot(path=str(shots / "wall-kiosk-light.png"))

    # Revoked on the page: the screen's socket closes and the screen says why.
    page.click("#links-table button.btn-danger")
    page.wait_for_selector("#links-table tr.revoked")
    tv.wait_for_selector("text=This wall link is not valid", timeout=15_000)
    assert page.js_errors == []


def test_a_tampered_tv_link_opens_nothing(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, north: Any
) -> None:
    server = live_server_up
    link = wall_links.create_wall_link(supervisor_sam, "Lobby")
    signed = wall_links.signed_key(link)
    tv = new_page()
    response = tv.goto(f"{server.url}/tv/{signed[:-2]}xx/")
    assert response.status == 404
    assert "This wall link is not valid" in tv.inner_text("body")


def test_the_theme_toggle_is_remembered_and_motion_can_be_reduced(
    live_server_up: Server, new_page: Any, supervisor_sam: Any, north: Any
) -> None:
    server = live_server_up
    seed_floor(4, ["North"], seed=2)
    page = new_page(color_scheme="dark", reduced_motion="reduce")
    log_in(page, server, "sam", "pw-sam")
    wait_live(page)
    assert page.get_attribute("html", "data-theme") == "dark"
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    assert page.get_attribute("html", "data-theme") == "light"
    page.reload()
    wait_live(page)
    assert page.get_attribute("html", "data-theme") == "light"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != dark
    # Reduced motion: tiles neither pulse nor flash.
    page.evaluate("document.querySelector('.tile').classList.add('flash')")
    assert (
        page.evaluate("getComputedStyle(document.querySelector('.tile')).animationName") == "none"
    )

"""The app in a real browser: `streamlit run` on what the whole synthetic graph produced,
driven by Selenium in Debian's headless Chromium. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from cinematch_assets.sources.synthetic import MARKDOWN_TITLES
from cinematch_assets.storage import serving_files as files
from cinematch_assets.storage.serving_files import split_rows
from cinematch_assets_tests.conftest import REPO_ROOT, free_port, served_json

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = REPO_ROOT / "test-artifacts"
WAIT_SECONDS = 60

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt install chromium chromium-driver; "
    ".ci/run installs them where it can)",
)


@pytest.fixture(scope="module")
def app_url(synthetic_models_run):
    result, _, _, home = synthetic_models_run
    assert result.success
    port = free_port()
    env = {**os.environ, "CINEMATCH_HOME": str(home)}
    env.pop("TMDB_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app" / "streamlit_app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start:\n{process.stdout.read().decode()[-3000:]}")
        time.sleep(0.3)
    yield url, home
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1500,1300",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def settled(driver) -> None:
    """Wait until Streamlit has finished the current run of the script."""
    from selenium.webdriver.support.ui import WebDriverWait

    time.sleep(0.3)  # let a triggered rerun start before waiting for it to end
    WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: d.find_elements(
            "css selector", '[data-testid="stApp"][data-test-script-state="notRunning"]'
        )
    )


def type_into(driver, label: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    # The open tab's widgets appear with its run (only the open tab is drawn).
    box = WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: next(
            (e for e in d.find_elements("css selector", f'input[aria-label="{label}"]')
             if e.is_displayed()),
            None,
        )
    )  # fmt: skip
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)
    settled(driver)


def slide_to_the_end(driver, label: str) -> None:
    """Move the visible slider called `label` to its maximum, as a keyboard user would:
    focus its thumb (a visually hidden range input) and press End."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    slider = next(
        s for s in driver.find_elements("css selector", '[data-testid="stSlider"]')
        if s.is_displayed() and label in s.text
    )  # fmt: skip
    driver.execute_script("arguments[0].focus()", slider.find_element("css selector", "input"))
    ActionChains(driver).send_keys(Keys.END).perform()
    settled(driver)


def mean_ratings_count(cards) -> float:
    """How watched the movies on these cards are, from their "Community 3.4 (181 ratings)"."""
    counts = [
        int(m.group(1).replace(",", ""))
        for c in cards
        if (m := re.search(r"\(([\d,]+) ratings?\)", c if isinstance(c, str) else c.text))
    ]
    assert counts, "no card shows its number of ratings"
    return sum(counts) / len(counts)


def button(driver, text: str):
    """The visible button reading `text` (of the open tab: only it is drawn, with its run)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: next(
            (b for b in d.find_elements("css selector", "button")
             if b.text == text and b.is_displayed()),
            None,
        )
    )  # fmt: skip


def open_tab(driver, name: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    # A page just opened may not have drawn its tabs yet.
    tab = WebDriverWait(driver, WAIT_SECONDS).until(
        lambda d: next(
            (t for t in d.find_elements("css selector", '[role="tab"]') if t.text == name), None
        )
    )
    # Clear of the page's sticky header, wherever the page was scrolled to.
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", tab)
    tab.click()
    settled(driver)


def visible_cards(driver, css: str = ".cm-card:not(.cm-row)") -> list:
    """The movie cards on the page: a list's or a search's, not the New for you row's."""
    return [c for c in driver.find_elements("css selector", css) if c.is_displayed()]


def row_cards(driver) -> list:
    """The "New for you" row's cards."""
    return visible_cards(driver, ".cm-row")


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_a_person_uses_every_tab(app_url, browser):
    url, home = app_url
    manifest = json.loads(files.manifest_path(home).read_text())
    shard = files.recommendations_dir(home) / manifest["version"] / files.shard_name(0)
    user = next(iter(json.loads(shard.read_text())))

    browser.get(url)
    settled(browser)
    type_into(browser, "Your user id", user)
    assert len(visible_cards(browser)) == 10
    assert f"Top 10 for user {user}" in browser.page_source
    shot(browser, "1-for-you")

    # More discovery: the same user's list re-ranked toward lesser-known movies.
    first = [c.text for c in visible_cards(browser)]
    slide_to_the_end(browser, "More discovery")
    assert len(visible_cards(browser)) == 10
    assert [c.text for c in visible_cards(browser)] != first
    assert mean_ratings_count(visible_cards(browser)) <= mean_ratings_count(first)
    shot(browser, "1b-more-discovery")

    # Not interested in the first movie: the list re-ranks at once, without it (one of the
    # release's users, so for this session only, and the page says so).
    before = [c.text for c in visible_cards(browser)]
    button(browser, "Not interested").click()
    settled(browser)
    assert "Updated with your latest ratings" in browser.page_source
    assert "read-only" in browser.page_source
    after = [c.text for c in visible_cards(browser)]
    assert len(after) == 10 and before[0] not in after
    shot(browser, "1c-not-interested")

    type_into(browser, "Your user id", "not-a-number")
    assert "is not a user id" in browser.page_source
    assert "Traceback" not in browser.page_source

    open_tab(browser, "Search")
    type_into(browser, "Title", "empire")
    found = visible_cards(browser)
    assert found and all("empire" in c.text.lower() for c in found)
    shot(browser, "2-search")

    open_tab(browser, "New here")
    for query in ("empire", "harbor", "signal"):
        type_into(browser, "Find a movie you have seen", query)
        button(browser, "Rate it").click()
        settled(browser)
    assert "Your ratings:" in browser.page_source
    assert "Recommended for you" in browser.page_source
    assert len(visible_cards(browser)) == 10
    shot(browser, "3-new-here")
    first = [c.text for c in visible_cards(browser)]
    slide_to_the_end(browser, "More discovery")
    assert len(visible_cards(browser)) == 10
    assert [c.text for c in visible_cards(browser)] != first
    assert mean_ratings_count(visible_cards(browser)) <= mean_ratings_count(first)
    shot(browser, "3b-new-here-more-discovery")

    # Saved, the ratings come back with the page's address, in a new session.
    ratings = re.search(r"Your ratings: ([^\n]+)", browser.find_element("tag name", "body").text)
    button(browser, "Save my ratings").click()
    settled(browser)
    assert "your ratings are saved" in browser.page_source
    link = browser.current_url
    assert "user=1000000" in link and "key=" in link
    shot(browser, "3c-new-here-saved")
    browser.get(link)
    open_tab(browser, "New here")
    again = re.search(r"Your ratings: ([^\n]+)", browser.find_element("tag name", "body").text)
    assert set(again.group(1).split(", ")) == set(ratings.group(1).split(", "))
    assert len(visible_cards(browser)) == 10

    open_tab(browser, "Insights")
    charts = [
        c for c in browser.find_elements("css selector", '[data-testid="stPlotlyChart"]')
        if c.is_displayed()
    ]  # fmt: skip
    assert len(charts) >= 5
    shot(browser, "4-insights")


def test_text_from_the_url_and_from_data_stays_text(app_url, browser):
    """A crafted ?user= puts no link or image on the page; titles full of Markdown syntax
    (real MovieLens ones) appear exactly as written, on cards and in the caption."""
    from urllib.parse import quote, urlparse

    url, _ = app_url
    for crafted in (
        "[Your session expired](https://evil.example/login)",
        "![x](https://evil.example/t.png)",
    ):
        browser.get(f"{url}/?user={quote(crafted)}")
        settled(browser)
        assert "is not a user id" in browser.page_source
        # Streamlit's own "skip to content" link repeats the page's URL: what matters is
        # that no link or image leads to the attacker's host.
        for tag in ("a", "img"):
            for element in browser.find_elements("css selector", tag):
                target = element.get_attribute("href") or element.get_attribute("src") or ""
                assert urlparse(target).hostname != "evil.example", element.get_attribute(
                    "outerHTML"
                )
        assert "evil.example" not in browser.find_element("css selector", "body").text
    shot(browser, "5-crafted-url")

    open_tab(browser, "New here")
    for title in MARKDOWN_TITLES:
        query = title.split(" (")[0]
        type_into(browser, "Find a movie you have seen", query)
        rate = next(
            b for b in browser.find_elements("css selector", "button") if b.text == "Rate it"
        )
        rate.click()
        settled(browser)
    body = browser.find_element("css selector", "body").text
    caption = next(line for line in body.splitlines() if line.startswith("Your ratings:"))
    for title in MARKDOWN_TITLES:
        assert title.split(" (")[0] in caption, caption
    assert not browser.find_elements("css selector", '[data-testid="stMarkdown"] em, .katex')
    shot(browser, "6-markdown-titles")

    open_tab(browser, "Search")
    for title in MARKDOWN_TITLES:
        type_into(browser, "Title", title.split(" (")[0])
        shown = [card.text for card in visible_cards(browser)]
        assert any(title.split(" (")[0] in text for text in shown), (title, shown)


def test_a_new_movie_shows_with_its_badge_and_reason(app_url, browser):
    """Movies the models place from their content, in a user's row under their top 10:
    a recent release under "New for you" with a New badge, an older film under "Little
    known, for you" with no New badge, each with a reason in words; and the movie added
    to the release with no rating is in Search."""
    url, home = app_url
    both = [(u, split_rows(entries)[1]) for u, entries in served_json(home).items()]
    user, row = next(
        ((u, row) for u, row in both if {bool(e.get("fresh")) for e in row} == {True, False}),
        next((u, row) for u, row in both if row),
    )
    browser.get(f"{url}/?user={user}")
    settled(browser)
    assert len(visible_cards(browser)) == 10
    page = browser.find_element("css selector", "body").text
    cards = row_cards(browser)
    assert len(cards) == len(row)
    for card, entry in zip(cards, sorted(row, key=lambda e: not e.get("fresh")), strict=True):
        fresh = bool(entry.get("fresh"))
        assert bool(card.find_elements("css selector", ".cm-new")) is fresh, card.text
        assert ("New, and" if fresh else "Little known, and") in card.text, card.text
    assert ("New for you" in page) is any(e.get("fresh") for e in row)
    assert ("Little known, for you" in page) is (not all(e.get("fresh") for e in row))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cards[0])
    shot(browser, "7-new-for-you")

    open_tab(browser, "Search")
    type_into(browser, "Title", "sing along sky")
    found = visible_cards(browser)
    assert any("Sing Along Sky" in c.text and "Not rated yet" in c.text for c in found)

"""The survey end to end in a real browser: Debian's headless Chromium driven by Selenium clicks through a short
survey served by werkzeug in a background thread; the votes land in the database and in the results table; on a
phone-sized screen both images are in view without sideways scrolling."""

import sqlite3
import threading
from urllib.parse import urlparse

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from sweep.survey import REAL, create_app, pool_from_records, survey_results
from sweep.survey.render import markdown
from tests.test_survey_pool import FLAT, fake_sweep

N_PAIRS = 4


@pytest.fixture
def survey(tmp_path):
    records, real = fake_sweep(tmp_path, per_trial=3)
    pool = pool_from_records(records, FLAT, real_table=real)
    db = tmp_path / "survey" / "votes.db"
    server = make_server("127.0.0.1", 0, create_app(pool, db, n_pairs=N_PAIRS, real_share=0.25), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", pool, db
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One headless Chromium for the file (it takes seconds to start)."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}", "--window-size=1000,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium):
    """The browser as a new visitor: no cookies, a desktop-sized screen."""
    chromium.delete_all_cookies()
    yield chromium
    chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def progress_is(driver, text):
    WebDriverWait(driver, 15).until(lambda d: d.find_element(By.ID, "progress").text == text)


def image_id(img) -> int:
    return int(urlparse(img.get_attribute("src")).path.rsplit("/", 1)[1])


def test_click_through_a_survey(survey, browser):
    url, pool, db = survey
    browser.get(url)
    clicks = ["left", "right", "cant-tell", "left"]
    shown = []
    for position, button in enumerate(clicks, start=1):
        progress_is(browser, f"{position} / {N_PAIRS}")
        left, right = (browser.find_element(By.CSS_SELECTOR, f"#{side} img") for side in ("left", "right"))
        shown.append((pool.ref(image_id(left)), pool.ref(image_id(right))))
        browser.find_element(By.ID, button).click()
    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "done").is_displayed())
    assert "Thank you!" in browser.find_element(By.ID, "done").text
    assert browser.find_element(By.ID, "progress").text == f"{N_PAIRS} / {N_PAIRS}"
    assert not browser.find_element(By.ID, "question").is_displayed()

    with sqlite3.connect(db) as con:
        stored = con.execute("SELECT p.left_table, p.left_row, p.right_table, p.right_row, v.choice, "
                             "p.left_method, p.right_method FROM votes v JOIN pairs p USING (token) "
                             "ORDER BY p.position").fetchall()
    assert [row[4] for row in stored] == ["left", "right", "cant_tell", "left"]
    for (left, right), row in zip(shown, stored):  # each vote is for the images that were on the screen
        assert (left.table, left.row, right.table, right.row) == row[:4]

    res = survey_results(db, n_boot=100)
    assert (res.participants, res.votes, res.cant_tell, res.real_votes) == (1, 4, 1, 1)
    assert "1 participants, 4 votes (1 \"can't tell\"" in markdown(res)
    decided = [row[5:] for row in stored if row[4] != "cant_tell"]
    (group,) = res.groups
    assert sum(m.selection.n for m in group.methods) == 2 * sum(REAL not in pair for pair in decided)
    assert sum(m.realism.n for m in group.methods) == sum(REAL in pair for pair in decided)


def test_phone_screen_shows_both_images(survey, browser):
    url, _, db = survey
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
    browser.get(url)
    progress_is(browser, f"1 / {N_PAIRS}")
    layout = browser.execute_script("""
        const box = (id) => document.querySelector(`#${id} img`).getBoundingClientRect().toJSON();
        return {scroll: document.documentElement.scrollWidth, width: window.innerWidth, height: window.innerHeight,
                left: box("left"), right: box("right")};""")
    assert layout["width"] == 390 and layout["scroll"] <= layout["width"]  # no sideways scrolling
    for side in ("left", "right"):
        box = layout[side]
        assert 0 <= box["left"] and box["right"] <= layout["width"] and 0 <= box["top"]
        assert box["bottom"] <= layout["height"] and box["width"] >= 150  # in view, and big enough to judge
    assert layout["left"]["right"] <= layout["right"]["left"]  # side by side
    browser.find_element(By.ID, "right").click()
    progress_is(browser, f"2 / {N_PAIRS}")
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT choice FROM votes").fetchall() == [("right",)]

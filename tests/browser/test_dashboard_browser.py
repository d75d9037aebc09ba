"""The PgBouncer dashboard in a real browser (Debian's Chromium): an operator logs in
through the admin, follows the link, and watches the numbers move under load without
reloading the page."""

import os
import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.conf import global_settings
from PIL import Image

from core.services import demo_posts_seed

pytestmark = [pytest.mark.servers, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
USERNAME = "dashboard-operator"
PASSWORD = "a-long-browser-password-7"
LOAD_REQUESTS = 200
# Each list page is one query (core/selectors.py); the dashboard's own refreshes
# add a few per 3 s, far below this.
LOAD_QUERIES = 150


def missing_browser(reason: str) -> None:
    """Skip on a laptop without Chromium; in CI a missing browser is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must have Chromium and ChromeDriver: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        missing_browser(
            f"{', '.join(missing)} not installed (devstack/bootstrap.sh test installs "
            "Debian's chromium and chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    # Both paths given, so Selenium Manager never downloads anything.
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=str(CHROMEDRIVER),
        log_output=str(tmp_path / "chromedriver.log"),
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def operator(settings, django_user_model):
    """A superuser gunicorn can log in: its hasher is one gunicorn's settings know
    (the test settings' fast MD5 is not among Django's defaults)."""
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    return django_user_model.objects.create_superuser(USERNAME, "", PASSWORD)


def admin_login(driver: Any, web: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(web + "/admin/login/?next=/admin/")
    driver.find_element(By.ID, "id_username").send_keys(USERNAME)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    WebDriverWait(driver, 20).until(
        ec.presence_of_element_located((By.ID, "pgbouncer-dashboard-link"))
    )


def dashboard_open(driver: Any, web: str) -> None:
    """From the admin index, by its link, as an operator would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    link = driver.find_element(By.ID, "pgbouncer-dashboard-link")
    assert link.is_displayed()
    link.click()
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return window.pgbouncerDashboard !== undefined")
    )
    assert driver.current_url == web + "/admin/pgbouncer/"
    # Gone if the page reloads or navigates: the values must change in place.
    driver.execute_script("window.__loadedOnce = 'still the same page';")


def cell(driver: Any, field: str, pool: str = "app/app") -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(
        By.CSS_SELECTOR, f'tbody[data-pool="{pool}"] [data-field="{field}"]'
    )


def shown(driver: Any, field: str) -> str:
    return str(cell(driver, field).text)


def shown_int(driver: Any, field: str) -> int:
    return int(re.sub(r"[^0-9]", "", shown(driver, field)))


def same_page(driver: Any) -> bool:
    return bool(
        driver.execute_script("return window.__loadedOnce === 'still the same page';")
    )


def load_generate(url: str) -> list[int]:
    """LOAD_REQUESTS list pages from 8 threads (loopback; each at most 10 s)."""

    def get(_: int) -> int:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(get, range(LOAD_REQUESTS)))


def script_errors(driver: Any) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]


def test_the_dashboard_follows_the_load_without_reloading(
    browser, web, operator, tmp_path
):
    from selenium.webdriver.support.ui import WebDriverWait

    demo_posts_seed(count=5)
    admin_login(browser, web)
    dashboard_open(browser, web)
    assert shown(browser, "mode") == "transaction"
    before = shown_int(browser, "total_query_count")
    updated_before = browser.find_element("id", "pgb-updated").text

    statuses: list[int] = []
    load = threading.Thread(
        target=lambda: statuses.extend(load_generate(web + "/")), daemon=True
    )
    live_rates: list[float] = []

    def moved(driver: Any) -> bool:
        rate = cell(driver, "queries_per_second")
        if rate.get_attribute("data-source") == "live":
            live_rates.append(float(re.sub(r"[^0-9.]", "", rate.text)))
        total = shown_int(driver, "total_query_count")
        return total >= before + LOAD_QUERIES and max(live_rates, default=0) >= 10

    load.start()
    try:
        WebDriverWait(browser, 20, poll_frequency=0.25).until(moved)
    finally:
        load.join(timeout=30)
    assert statuses == [200] * LOAD_REQUESTS
    assert same_page(browser), "the dashboard reloaded instead of updating in place"
    assert browser.execute_script("return window.pgbouncerDashboard.refreshes") >= 1
    assert browser.find_element("id", "pgb-updated").text != updated_before
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d", browser.find_element("id", "pgb-updated").text
    )
    assert not browser.find_element("id", "pgb-fetch-error").is_displayed()
    assert script_errors(browser) == []

    screenshot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(screenshot))
    shutil.copyfile(screenshot, "/tmp/dashboard.png")  # noqa: S108  for the lead to look at
    with Image.open(screenshot) as image:
        pixels = image.convert("RGB")
    width, height = pixels.size
    assert (width, height) >= (1000, 600)
    colours = pixels.getcolors(maxcolors=width * height)
    assert colours is not None
    assert len(colours) >= 100, "hardly any colours: a blank page?"
    commonest = max(count for count, _ in colours)
    assert commonest / (width * height) < 0.9, "nearly all one colour: a blank page?"


def test_a_failed_refresh_keeps_the_values_and_says_so(browser, web, operator):
    from selenium.webdriver.support.ui import WebDriverWait

    admin_login(browser, web)
    dashboard_open(browser, web)

    def failures(driver: Any) -> int:
        return int(driver.execute_script("return window.pgbouncerDashboard.failures"))

    error = browser.find_element("id", "pgb-fetch-error")
    assert not error.is_displayed()
    assert failures(browser) == 0
    browser.execute_script(
        "window.fetch = () => Promise.reject(new TypeError('network down'));"
    )
    WebDriverWait(browser, 10).until(lambda d: failures(d) >= 1)
    total = shown(browser, "total_query_count")
    updated = browser.find_element("id", "pgb-updated").text
    WebDriverWait(browser, 10).until(lambda d: failures(d) >= 2)
    assert error.is_displayed()
    assert "Refresh failed" in error.text
    assert "network down" in error.text
    assert f"showing the values from {updated}" in error.text
    assert shown(browser, "total_query_count") == total
    assert browser.find_element("id", "pgb-updated").text == updated
    assert same_page(browser)

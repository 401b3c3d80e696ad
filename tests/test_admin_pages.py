"""The mail admin in a real browser (headless Chromium from Debian): what a staff user reads,
at 1400 px, and the screenshots in the site's docs/states.md (`make screenshots` refreshes them)."""

import os
import shutil
import sys
from pathlib import Path

import pytest
from harness.baked_site import bake
from harness.bakery import SITE_TEMPLATE, TEMPLATE
from harness.needs import cannot_run, service_answers
from harness.processes import wait_for
from harness.smtp_catcher import free_port

SCREENSHOTS = TEMPLATE / "build" / "screenshots"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WIDTH = 1400


@pytest.fixture
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        cannot_run(
            "Chromium and ChromeDriver are not installed (Debian: chromium chromium-driver)", "chromium"
        )
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={WIDTH},1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


@pytest.fixture
def admin_site(tmp_path):
    """A baked site with mails in every state, served by runserver (DEBUG on, as `make run`)."""
    site = bake(tmp_path)
    site.manage("migrate", "--verbosity", "0")
    site.run(
        sys.executable, TEMPLATE / "tests" / "site" / "admin_samples.py", "admin", "a-long-test-password"
    )
    port = free_port()
    site.start(
        sys.executable,
        "manage.py",
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        env={"DJANGO_DEBUG": "true"},
        log="web.log",
    )
    wait_for(lambda: service_answers(port), 30, "runserver listening")
    site.url = f"http://127.0.0.1:{port}"
    yield site
    site.stop_all()


def test_a_staff_user_reads_where_each_mail_stands_at_1400_px(admin_site, browser):
    from selenium.webdriver.common.by import By

    browser.get(f"{admin_site.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("a-long-test-password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(lambda: "/admin/login/" not in browser.current_url, 10, "the login")

    browser.get(f"{admin_site.url}/admin/post_office/email/")
    counts = browser.find_element(By.CLASS_NAME, "mail-counts").text
    for count in ("queued 1", "scheduled 1", "sending 1", "retrying 1", "sent 4", "failed 1"):
        assert count in counts, counts
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "sent to 2 of 3; refused: nobody@example.com (550 5.1.1 No such user here)" in page
    assert "1 failed attempt; next at" in page and "4.3.0 Try again later" in page
    assert "after 1 failed attempt: 554 5.7.1 Rejected as spam" in page
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= WIDTH, f"the page is {width} px wide"
    table, room = browser.execute_script(
        "const box = document.querySelector('.results'); return [box.scrollWidth, box.clientWidth]"
    )
    assert table <= room, f"the list needs {table} px and has {room}: it scrolls sideways"
    shot(browser, "admin-mail-list.png")

    browser.find_element(By.LINK_TEXT, "retrying 1").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    assert [row.find_element(By.CLASS_NAME, "field-short_subject").text for row in rows] == ["Password reset"]

    browser.get(f"{admin_site.url}/admin/post_office/email/?state=sent")
    rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")
    next(row for row in rows if "Team update" in row.text).find_element(By.TAG_NAME, "a").click()
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "sent to 2 of 3; refused: nobody@example.com" in page
    assert "RESEND" in page.upper()
    shot(browser, "admin-mail.png")


def shot(browser, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / name))
    if os.environ.get("UPDATE_SCREENSHOTS"):
        (SITE_TEMPLATE / "docs").mkdir(exist_ok=True)
        shutil.copy(SCREENSHOTS / name, SITE_TEMPLATE / "docs" / name)

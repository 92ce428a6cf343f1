"""A real browser on the panel: Debian's Chromium through its chromium-driver (Selenium), headless.

Every page a test visits can be saved as a screenshot (SCREENSHOTS/<name>-<lang>.png), checked at a
phone's width (375 px: nothing may scroll sideways) and checked by axe-core (vendored, run through the
driver: no serious or critical violation).
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import RUN

SCREENSHOTS = RUN / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}
SERIOUS = {"serious", "critical"}


def chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=ja", "--no-first-run", "--password-store=basic"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "ja,en", "credentials_enable_service": False})
    return webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))


class Panel:
    """The browser, pointed at one gateway."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        self.shots: list[Path] = []

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.base_url)

    @property
    def lang(self) -> str:
        return str(self.find("html").get_attribute("lang"))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str = "main") -> str:
        return str(self.find(css).text)

    def fill(self, **fields: str) -> None:
        for name, value in fields.items():
            element = self.find(f'[name="{name}"]')
            element.clear()
            element.send_keys(value)

    def submit(self, css: str = "main form button[type=submit]") -> None:
        self.click(css)

    def click(self, css: str) -> None:
        """Click, and wait for the page it leads to (every button and link here loads a new page)."""
        self.driver.execute_script("window.__leaving = true")
        self.find(css).click()
        WebDriverWait(self.driver, 30).until(lambda driver: driver.execute_script(
            "return window.__leaving === undefined && document.readyState === 'complete'"))

    def sign_in(self, login: str, password: str) -> None:
        self.open("/login")
        self.fill(login=login, password=password)
        self.submit()

    def sign_out(self) -> None:
        self.click("header form button")

    def session_token(self) -> str:
        cookie = self.driver.get_cookie("__Host-session")
        assert cookie, "no session cookie"
        return str(cookie["value"])

    def switch_language(self) -> None:
        self.click("header a[hreflang]")

    def check(self, name: str) -> None:
        """The page as people see it: saved, checked by axe-core, and at a phone's width."""
        self.shoot(name)
        assert not self.serious_violations(), f"{name}: {json.dumps(self.serious_violations(), ensure_ascii=False)[:2000]}"
        with self.phone():
            overflow = self.driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            self.shoot(f"{name}-phone")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at 375 px"

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        path = SCREENSHOTS / f"{name}-{self.lang}.png"
        with self._tall(int(height)):
            self.driver.save_screenshot(str(path))
        self.shots.append(path)

    @contextmanager
    def _tall(self, height: int) -> Iterator[None]:
        size = self.driver.get_window_size()
        self.driver.set_window_size(size["width"], max(size["height"], min(height + 140, 4000)))
        try:
            yield
        finally:
            self.driver.set_window_size(size["width"], size["height"])

    @contextmanager
    def phone(self) -> Iterator[None]:
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
        try:
            yield
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    def serious_violations(self) -> list[dict[str, Any]]:
        if not self.driver.execute_script("return typeof window.axe !== 'undefined'"):
            self.driver.execute_script(AXE.read_text())
        violations = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations), e => done([{id: String(e)}]));")
        return [{"id": v["id"], "impact": v.get("impact"), "nodes": [n.get("target") for n in v.get("nodes", [])][:5]}
                for v in violations if v.get("impact") in SERIOUS or "impact" not in v]

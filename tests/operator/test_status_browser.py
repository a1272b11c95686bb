"""/status in a real headless Chromium against a running daemon and the sandboxes: the overview's
content, its layout on a 390-px phone, and the SKU search landing on the SKU's history.
Screenshots (desktop 1280 px, phone 390 px) are kept in test-artifacts/."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.demo import DEMO_ENV
from tests.daemon.test_e2e import Proc, free_port, wait_for

pytestmark = pytest.mark.slow

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])"
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "no Chromium: install Debian's chromium and chromium-driver (see .ci/run)", allow_module_level=True
    )

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
WEBHOOK_SECRET = "browser-webhook-secret-31"


def browser(width: int, *, phone: bool) -> Any:
    """Headless Chromium; ``phone`` emulates a 390-px touch screen (the viewport tag then matters)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    if phone:
        options.add_experimental_option(
            "mobileEmulation", {"deviceMetrics": {"width": width, "height": 844, "pixelRatio": 2.0}}
        )
    else:
        options.add_argument(f"--window-size={width},900")
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)


def screenshot(driver: Any, name: str) -> Path:
    """A full-page screenshot in test-artifacts/ (and the page's HTML beside it)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    (ARTIFACTS / f"{name}.html").write_text(driver.page_source)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 12000), "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


@pytest.fixture(scope="module")
def daemon_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Sandboxes and a daemon as processes: a sale the ERP refused, a manual edit on the channel
    the second reconcile finds, low-stock SKUs and a hot one."""
    tmp = tmp_path_factory.mktemp("browser")
    env = {**os.environ, **DEMO_ENV, "SYNCD_DEMO_WC_WEBHOOK_SECRET": WEBHOOK_SECRET}
    ports = {"erp": free_port(), "shop": free_port(), "daemon": free_port()}
    url = f"http://127.0.0.1:{ports['daemon']}"
    procs = [
        Proc(
            ["sandbox", "mock_erp", "--port", str(ports["erp"]), "--data-dir", str(tmp / "erp")],
            tmp / "erp.log",
            env,
        ),
        Proc(
            [
                "sandbox",
                "woocommerce",
                "--port",
                str(ports["shop"]),
                "--webhook-url",
                f"{url}/webhooks/webstore",
            ],
            tmp / "shop.log",
            env,
        ),
    ]
    erp = httpx.Client(base_url=f"http://127.0.0.1:{ports['erp']}", timeout=10)
    shop = httpx.Client(base_url=f"http://127.0.0.1:{ports['shop']}", timeout=10)
    client = httpx.Client(base_url=url, timeout=10)
    try:
        wait_for(lambda: erp.get("/_sandbox/stock").status_code == 200, what="ERP sandbox")
        wait_for(lambda: shop.get("/_sandbox/listings").status_code == 200, what="shop sandbox")
        stock = {f"TEE-{i:02d}": 3 + (i * 7) % 40 for i in range(30)} | {"MUG-RED": 1, "CAP-BLUE": 30}
        erp.post("/_sandbox/seed", json={"items": [{"sku": s, "quantity": q} for s, q in stock.items()]})
        shop.post("/_sandbox/seed", json={"items": [{"sku": s, "quantity": 5} for s in stock]})
        # Sold on the shop before syncd started: 3 mugs, and the ERP holds only 1 (a refused sale).
        assert shop.post("/_sandbox/purchase", json={"sku": "MUG-RED", "quantity": 3}).status_code == 201
        config = tmp / "syncd.yaml"
        config.write_text(
            f"""
database_url: sqlite:///{tmp / "data" / "syncd.db"}
server: {{host: 127.0.0.1, port: {ports["daemon"]}}}
schedule: {{reconcile_interval: 6s, order_poll_interval: 3s, erp_poll_interval: 3s, jitter: 0s}}
stock: {{safety_stock: 1, low_stock_threshold: 6}}
logging: {{format: json}}
erp: {{type: mock_erp, base_url: "http://127.0.0.1:{ports["erp"]}", api_key: "${{SYNCD_DEMO_ERP_KEY}}"}}
channels:
  - name: webstore
    type: woocommerce
    base_url: "http://127.0.0.1:{ports["shop"]}"
    consumer_key: "${{SYNCD_DEMO_WC_KEY}}"
    consumer_secret: "${{SYNCD_DEMO_WC_SECRET}}"
    webhook_secret: "${{SYNCD_DEMO_WC_WEBHOOK_SECRET}}"
"""
        )
        daemon = Proc(["run", "--config", str(config)], tmp / "daemon.log", env)
        procs.append(daemon)
        wait_for(lambda: client.get("/health").status_code == 200, what=f"/health\n{daemon.output()}")
        wait_for(
            lambda: any(
                r["finished_at"] for r in client.get("/api/status").json()["runs"] if r["kind"] == "reconcile"
            ),
            what="the first reconcile",
        )
        for _ in range(4):  # a hot SKU, sold by signed webhooks
            assert shop.post("/_sandbox/purchase", json={"sku": "CAP-BLUE", "quantity": 2}).status_code == 201
        shop.post("/_sandbox/listings", json={"sku": "TEE-05", "quantity": 44})  # a manual edit
        wait_for(
            lambda: any(g["cause"] == "manual_edit" for g in client.get("/api/status").json()["drift_24h"]),
            what="the manual edit as drift",
        )
        wait_for(lambda: client.get("/api/status").json()["refused_sales"], what="the refused sale")
        yield url
    finally:
        for c in (erp, shop, client):
            c.close()
        for proc in reversed(procs):
            proc.stop()


def test_overview_in_a_desktop_browser(daemon_url: str) -> None:
    """At 1280 px the overview shows each section with live data (each connector's circuit
    breaker among it) and draws its chart."""
    driver = browser(1280, phone=False)
    try:
        driver.get(f"{daemon_url}/status")
        text = driver.find_element(By.TAG_NAME, "body").text
        for heading in (
            "Channels",
            "Propagation",
            "Sales and pushes",
            "Oversell risk",
            "Sales the ERP refused",
            "Drift, last 24 h",
            "Last runs",
            "Events",
        ):
            assert heading in text
        assert "webstore" in text and "healthy" in text
        assert "Circuit breaker" in text and "API budget today" in text
        channels = driver.find_element(By.XPATH, "//section[h2='Channels']").text
        assert channels.count("closed") == 2  # the ERP's breaker and the web store's
        assert "MUG-RED" in text and "CAP-BLUE" in text  # refused sale, hot SKU
        assert "manual_edit" in text and "TEE-05" in text
        assert "reconcile" in text and "orders" in text
        assert driver.find_elements(By.CSS_SELECTOR, "svg rect")  # sales bars
        screenshot(driver, "status-desktop")
    finally:
        driver.quit()


def test_overview_fits_a_phone(daemon_url: str) -> None:
    """On a 390-px phone the page lays out at 390 px (viewport tag) with nothing wider than the
    screen, and the text is at a readable size."""
    driver = browser(390, phone=True)
    try:
        driver.get(f"{daemon_url}/status")
        assert driver.execute_script("return window.innerWidth") == 390
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        size = driver.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 14
        screenshot(driver, "status-phone")
    finally:
        driver.quit()


@pytest.mark.parametrize(("width", "phone"), [(1280, False), (390, True)], ids=["desktop", "phone"])
def test_searching_a_sku_opens_its_history(daemon_url: str, width: int, phone: bool) -> None:
    """Typing a SKU in the search box and submitting lands on its page: stock, each channel's
    quantity and why, a chart, and the history with the sales."""
    driver = browser(width, phone=phone)
    try:
        driver.get(f"{daemon_url}/status")
        box = driver.find_element(By.NAME, "sku")
        box.send_keys("CAP-BLUE")
        box.submit()
        wait_for(lambda: "/status/sku/CAP-BLUE" in driver.current_url, what="the SKU page")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "ERP on hand" in text and "What each channel shows, and why" in text
        assert "decided webstore" in text and "sold" in text
        assert driver.find_elements(By.CSS_SELECTOR, "svg path")
        if phone:
            assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(driver, f"sku-{'phone' if phone else 'desktop'}")
    finally:
        driver.quit()

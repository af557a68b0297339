"""`anl serve` in a real browser: its index, the API page, CORS for the configured origin."""

from __future__ import annotations

import json
import urllib.request

import pytest

pytestmark = pytest.mark.browser


def test_index_links_the_dashboard_the_api_page_and_the_client(live_server, browser):
    browser.get(live_server.url + "/")
    assert browser.title == "analytics"
    links = {a.get_attribute("href") for a in browser.find_elements("css selector", "a")}
    for path in (
        "/dashboard",
        "/api/v1/analytics/docs",
        "/openapi.json",
        "/clients/js/analytics.js",
        "/clients/js/dist/analytics.min.js",
    ):
        assert live_server.url + path in links


def test_interactive_api_page_lists_every_route_and_fits_a_phone(live_server, browser):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.integration.test_openapi import ROOT

    browser.set_window_size(360, 2000)
    browser.get(live_server.url + "/api/v1/analytics/docs")
    WebDriverWait(browser, 20).until(ec.presence_of_element_located(("css selector", ".opblock")))
    shown = {
        (
            block.find_element("css selector", ".opblock-summary-method").text.lower(),
            block.get_attribute("id"),
        )
        for block in browser.find_elements("css selector", ".opblock")
    }
    paths = [
        element.get_attribute("data-path")
        for element in browser.find_elements("css selector", ".opblock-summary-path")
    ]
    routes = json.loads((ROOT / "openapi.json").read_text())["paths"]
    assert sorted(paths) == sorted(routes)  # the ingest routes and the query routes, every one
    assert {method for method, _ in shown} == {"get", "post"}
    viewport = browser.find_element("css selector", "meta[name='viewport']").get_attribute("content")
    assert "width=device-width" in viewport
    # a phone's width: the page itself does not scroll sideways
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 360


def test_served_openapi_document_is_the_committed_one(live_server):
    from tests.integration.test_openapi import ROOT

    with urllib.request.urlopen(live_server.url + "/openapi.json") as response:
        assert json.loads(response.read()) == json.loads((ROOT / "openapi.json").read_text())

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


def test_interactive_api_page_renders_the_query_routes(live_server, browser):
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server.url + "/api/v1/analytics/docs")
    WebDriverWait(browser, 20).until(ec.presence_of_element_located(("css selector", ".opblock")))
    text = browser.find_element("css selector", "body").text
    assert "/api/v1/analytics/{domain}/{entity_type}/top" in text


def test_served_openapi_document_is_the_committed_one(live_server):
    from tests.integration.test_openapi import ROOT

    with urllib.request.urlopen(live_server.url + "/openapi.json") as response:
        assert json.loads(response.read()) == json.loads((ROOT / "openapi.json").read_text())

"""The degraded banner names what is wrong and what to do, on every page."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Server, open_page, screenshot, wait_for

pytestmark = pytest.mark.timeout(180)


def test_a_failing_source_shows_a_banner_that_says_what_to_do(browser, tmp_path) -> None:  # noqa: ANN001
    s = Server(tmp_path, feed=False, source_path=tmp_path / "missing" / "metrics.jsonl")
    try:
        for page in ("/", "/rules"):
            open_page(browser, s.url + page)
            banner = wait_for(lambda: (b := browser.find_element("id", "banner")).is_displayed() and b, 30, what="the degraded banner")
            text = banner.text
            assert "Degraded" in text
            assert "metrics" in text and "missing" in text  # which source, and the path it wants
            assert "--source" in text  # what to do
            assert browser.execute_script("return document.body.dataset.health") == "degraded"
        screenshot(browser, "degraded")
    finally:
        s.close()


def test_redis_down_shows_a_banner_until_it_is_back(browser, tmp_path) -> None:  # noqa: ANN001
    from tests.support.services import RedisServer

    redis = RedisServer()
    redis.start()
    s = None
    try:
        s = Server(tmp_path, state=redis.url)
        open_page(browser, s.url + "/")
        assert not browser.find_element("id", "banner").is_displayed()
        redis.stop()
        banner = wait_for(
            lambda: (b := browser.find_element("id", "banner")).is_displayed() and b, 40, what="the banner after Redis stopped"
        )
        text = banner.text
        assert "State store" in text and "in memory" in text and "Start Redis again" in text
        # The engine keeps running: the events counter still moves under the banner.
        before = browser.find_element("css selector", '[data-kpi="events_today"]').text
        wait_for(
            lambda: browser.find_element("css selector", '[data-kpi="events_today"]').text != before, 20, what="events to keep flowing"
        )
        redis.start()  # same port: the store reconnects
        wait_for(lambda: not browser.find_element("id", "banner").is_displayed(), 60, what="the banner to go")
    finally:
        if s is not None:
            s.close()
        redis.stop()

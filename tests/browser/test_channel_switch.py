"""A channel's switch in the console: flipping it off stops a real webhook receiver on
127.0.0.1 from getting alerts (they show as "skipped" on the alerts page), flipping it
back on resumes them; the switch survives a page reload (it lives in the catalogue)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.api.test_channel_switch import Hook
from tests.browser.conftest import Feeder, Server, _need_browser, open_page, wait_for
from tests.browser.test_console import alerts_of, all_css, by_css

pytestmark = pytest.mark.timeout(240)

RULES = '''\
stream metrics (ts: timestamp, host: str, cpu: float, status: str)
  time ts
  lateness 1s

channel hook = webhook(url = "{hook}", retries = 0)

rule hot "CPU above 90"
  from metrics
  where cpu > 90
  severity high
  notify hook
  message "{{{{ host }}}} runs hot"
'''


@pytest.fixture(scope="module")
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, hook: Hook) -> Iterator[Server]:
    _need_browser()
    text = RULES.replace("{hook}", hook.url)
    s = Server(tmp_path_factory.mktemp("switch"), text, feed=False, extra_args=("--allow-host", "127.0.0.1"))
    try:
        yield s
    finally:
        s.close()


def switch_of(driver, name: str):  # noqa: ANN001, ANN201
    return by_css(driver, f'tr[data-channel="{name}"] .switch')


def test_a_channel_switch_stops_and_resumes_a_webhook(browser, hooked, hook) -> None:  # noqa: ANN001
    hooked.feeder.write([Feeder.event("alpha-1", 97.0)])
    wait_for(lambda: hook.saw("alpha-1 runs hot"), 30, what="the webhook to get alpha-1's alert")

    open_page(browser, hooked.url + "/channels")
    sw = switch_of(browser, "hook")
    assert sw.get_attribute("aria-checked") == "true" and "enabled" in sw.text
    sw.click()
    wait_for(lambda: switch_of(browser, "hook").get_attribute("aria-checked") == "false", what="the switch to turn off")
    assert "disabled" in by_css(browser, 'tr[data-channel="hook"]').get_attribute("class")
    assert hooked.api("GET", "/cep/channels/hook").json()["enabled"] is False

    hooked.feeder.write([Feeder.event("bravo-2", 98.0)])
    wait_for(
        lambda: any(a["record"].get("host") == "bravo-2" for a in alerts_of(hooked, "hot")), 30, what="bravo-2's alert in the history"
    )
    # The alerts page shows the delivery as skipped (a word and a mark, not only a colour).
    open_page(browser, hooked.url + "/alerts")
    wait_for(
        lambda: any("hook: skipped" in o.text for o in all_css(browser, ".outcome.skipped")),
        30,
        what="the skipped outcome on the alerts page",
    )
    time.sleep(1)
    assert not hook.saw("bravo-2")

    # Still off after a reload of the page: the switch is read back from the API.
    open_page(browser, hooked.url + "/channels")
    assert switch_of(browser, "hook").get_attribute("aria-checked") == "false"
    switch_of(browser, "hook").click()
    wait_for(lambda: hooked.api("GET", "/cep/channels/hook").json()["enabled"] is True, what="enabled again")
    hooked.feeder.write([Feeder.event("charlie-3", 99.0)])
    wait_for(lambda: hook.saw("charlie-3 runs hot"), 30, what="the webhook to get charlie-3's alert")
    assert not hook.saw("bravo-2")  # skipped stays skipped: not sent when the channel comes back
    # Leave no page polling a server that is about to stop (its errors would land in the next test's log).
    browser.get("about:blank")
    browser.get_log("browser")

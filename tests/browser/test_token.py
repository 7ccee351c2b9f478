"""With a token configured the console asks for it once, keeps it in the tab's session
storage, sends it as a bearer header, and never puts it in an address."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Server, open_page, wait_for

pytestmark = pytest.mark.timeout(180)
TOKEN = "tok-3b9f6c2e71"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):  # noqa: ANN001, ANN201
    s = Server(tmp_path_factory.mktemp("console-token"), token=TOKEN, feed=False)
    try:
        yield s
    finally:
        s.close()


def test_token_is_asked_once_and_sent_as_a_bearer_header(browser, token_server) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    browser.get(token_server.url + "/rules")
    dialog = wait_for(
        lambda: (d := browser.find_element(By.ID, "token-dialog")).get_attribute("open") is not None and d, what="the token dialog"
    )
    # A wrong token first: the change is refused and the dialog asks again.
    dialog.find_element(By.ID, "token-input").send_keys("wrong")
    dialog.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready === '1'"), what="rules listed")
    browser.find_element(By.CSS_SELECTOR, 'tr[data-rule="high_cpu"] .switch').click()
    wait_for(lambda: "refused" in browser.find_element(By.ID, "token-error").text, what="a second ask")
    dialog.find_element(By.ID, "token-input").send_keys(TOKEN)
    dialog.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait_for(lambda: token_server.api("GET", "/cep/rules/high_cpu").json()["enabled"] is False, what="the toggle with the token")
    assert browser.execute_script("return sessionStorage.getItem('cep.token')") == TOKEN
    # Asked once: another page in the same tab does not ask again and changes work.
    open_page(browser, token_server.url + "/rules")
    assert browser.find_element(By.ID, "token-dialog").get_attribute("open") is None
    browser.find_element(By.CSS_SELECTOR, 'tr[data-rule="high_cpu"] .switch').click()
    wait_for(lambda: token_server.api("GET", "/cep/rules/high_cpu").json()["enabled"] is True, what="a second toggle")
    urls = browser.execute_script("return [location.href, ...performance.getEntries().map(e => e.name)]")
    assert urls and not [u for u in urls if TOKEN in u]
    # Without the header the server refuses the same change: the token is what let it through.
    import httpx

    r = httpx.patch(token_server.url + "/cep/rules/high_cpu/toggle", json={"enabled": False}, headers={"X-CEP-Request": "1"})
    assert r.status_code == 401
    browser.execute_script("sessionStorage.clear()")

"""Browser tests of the console: Debian's chromium driven through chromedriver (Selenium)
against a real `cep serve` subprocess with events flowing into it.

`scripts/install-browser.sh` installs the browser.  With `CI=true` a missing browser
fails the tests; elsewhere they skip.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("CEP_SCREENSHOTS", "/tmp/cep-console-shots"))


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        msg = f"{', '.join(missing)} missing (run scripts/install-browser.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def make_driver(width: int = 1400, height: int = 1000):  # noqa: ANN201
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
        "--force-color-profile=srgb",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    _need_browser()
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


RULES = '''\
stream metrics (ts: timestamp, host: str, cpu: float, status: str)
  time ts
  lateness 1s

channel ops_log = file(path = "{outdir}/notifications.jsonl")

rule high_cpu "CPU above 90"
  from metrics
  where cpu > 90
  severity high
  notify ops_log
  message "{{{{ host }}}}: cpu {{{{ cpu }}}}%"

rule host_down "A host reports down"
  from metrics
  where status == "down"
  severity critical
  notify ops_log
  message "{{{{ host }}}} is down"

rule cpu_anomaly "CPU is an outlier for its host"
  from metrics
  group by host
  anomaly zscore(cpu, threshold = 3.0) baseline 50 warmup 5
  severity low
'''


class Feeder:
    """Appends events with the current time to the JSONL file `cep serve` follows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sent = 0
        self.thread: threading.Thread | None = None

    def write(self, events: list[dict]) -> None:
        with self.lock, self.path.open("a") as f:
            for e in events:
                f.write(json.dumps(e) + "\n")
            self.sent += len(events)

    @staticmethod
    def event(host: str, cpu: float, status: str = "healthy", at: dt.datetime | None = None) -> dict:
        at = at or dt.datetime.now(dt.timezone.utc)
        return {"ts": at.isoformat().replace("+00:00", "Z"), "host": host, "cpu": cpu, "status": status}

    def start(self, every: float = 0.5) -> None:
        def run() -> None:
            i = 0
            while not self.stop.wait(every):
                i += 1
                # Ordinary load: no match; every 4th tick one host runs hot (high_cpu).
                batch = [self.event(f"web-{k}", 20.0 + (i + k) % 7) for k in range(4)]
                if i % 4 == 0:
                    batch.append(self.event("web-9", 97.0))
                self.write(batch)

        self.thread = threading.Thread(target=run, name="feeder", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(5)


class Server:
    def __init__(
        self,
        tmp: Path,
        rules_text: str = RULES,
        token: str | None = None,
        feed: bool = True,
        source_path: Path | None = None,
        state: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        out = tmp / "out"
        out.mkdir(exist_ok=True)
        self.rules = tmp / "ops.cep"
        self.rules.write_text(rules_text.format(outdir=out))
        self.events = source_path or tmp / "metrics.jsonl"
        if source_path is None:
            self.events.touch()
        self.feeder = Feeder(self.events)
        self.token = token
        cep = shutil.which("cep", path=str(Path(sys.executable).parent)) or "cep"
        cmd = [
            cep,
            "serve",
            str(self.rules),
            "--source",
            f"metrics=jsonl:{self.events}",
            "--state",
            state or f"sqlite:{tmp / 'state.sqlite'}",
            "--outbox",
            str(tmp / "outbox.sqlite"),
            "--checkpoint-every",
            "1",
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        if token:
            cmd += ["--token", token]
        cmd += list(extra_args)
        self.log = (tmp / "serve.log").open("w")
        env = dict(os.environ, CEP_LOG="WARNING")
        self.proc = subprocess.Popen(cmd, cwd=tmp, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_up()
        if feed:
            self.feeder.start()
            self._wait_warm()

    def _wait_warm(self) -> None:
        """Until the engine has taken in the feeder's first events. On a cold Numba cache
        (every fresh clone) the first batch compiles the JSON scanner (~20 s of CPU, holding
        the GIL), and a test clicking meanwhile timed out waiting for its save (CI, once)."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cep serve exited {self.proc.returncode}:\n{self.logs()}")
            try:
                streams = self.api("GET", "/cep/streams").json()
                if any(s.get("events_in", 0) > 0 for s in streams):
                    return
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"cep serve took in no event in 180 s:\n{self.logs()}")

    def _wait_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cep serve exited {self.proc.returncode}:\n{self.logs()}")
            try:
                if httpx.get(self.url + "/cep/health", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"cep serve did not answer:\n{self.logs()}")

    def logs(self) -> str:
        self.log.flush()
        return (self.tmp / "serve.log").read_text()[-4000:]

    def api(self, method: str, path: str, **kw) -> httpx.Response:
        headers = {"X-CEP-Request": "1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def close(self) -> None:
        self.feeder.close()
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _need_browser()
    s = Server(tmp_path_factory.mktemp("console"))
    try:
        yield s
    finally:
        s.close()


def wait_for(predicate, timeout: float = 20.0, every: float = 0.2, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - a page mid-redraw: try again
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def open_page(driver, url: str, timeout: float = 20.0) -> None:  # noqa: ANN001
    driver.get(url)
    wait_for(lambda: driver.execute_script("return document.body.dataset.ready === '1'"), timeout, what=f"{url} ready")


def browser_errors(driver) -> list[str]:  # noqa: ANN001
    """Script errors the page logged (failed requests the test provoked are filtered by the caller)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver, name: str) -> Path:  # noqa: ANN001
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def non_blank(driver, path: Path) -> dict:  # noqa: ANN001
    """How much of a screenshot is not background: the browser decodes the PNG onto a
    canvas and counts pixels that differ from the most common colour, and distinct
    colours (a blank or single-colour page gives ~0 and 1)."""
    import base64

    b64 = base64.b64encode(path.read_bytes()).decode()
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const img = new Image();
        img.onload = () => {
          const c = document.createElement("canvas");
          c.width = img.width; c.height = img.height;
          const ctx = c.getContext("2d");
          ctx.drawImage(img, 0, 0);
          const d = ctx.getImageData(0, 0, c.width, c.height).data;
          const counts = new Map();
          let n = 0;
          for (let i = 0; i < d.length; i += 4 * 7) {
            const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
            counts.set(k, (counts.get(k) || 0) + 1);
            n++;
          }
          const top = Math.max(...counts.values());
          done({ ink: 1 - top / n, colours: counts.size, width: c.width, height: c.height });
        };
        img.onerror = () => done({ ink: 0, colours: 0, error: "not an image" });
        img.src = "data:image/png;base64," + arguments[0];
        """,
        b64,
    )

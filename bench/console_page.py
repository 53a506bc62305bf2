"""The console page in Chromium: time to the first frame, requests and bytes, empty and warm
cache.

The VNC server is a real QEMU (SeaBIOS on a standard VGA, no disk) already running, as a
desktop would be, with a VNC password as every desktop's screen has. Two pages open it, each
measured in the same run:

- the portal's console page (signed in, under daphne): one minified bundle with a hashed
  name, gzip, a year's caching, the page's own ticket and its socket opened while the code
  loads; the proxy answers the VNC password and greets the browser in one message;
- the peer: noVNC as published on npm, its ES modules loaded one by one (as the portal's page
  did before the bundle), through websockify serving the same files (``--web``); noVNC
  answers the VNC password itself.

"First frame": from the navigation's start until the first animation frame in which the
screen's canvas holds an opaque pixel, noted by the page itself (``FIRST_FRAME``). The
proxy's first frame is asked for before noVNC runs (``vdi.console.first_frame``).
The empty-cache run uses a new browser context, once the server is idle again (the previous
run's console has closed: a first visit does not land on another console's closing); the warm
run loads the page again in it, as a reload does (its console closing meanwhile).
The numbers from the issue (measured before the bundle) are printed beside.

Usage: .venv/bin/python bench/console_page.py [--runs 11]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.setup_django import configure  # noqa: E402

os.environ.setdefault("VDI_TICKET_RATE_LIMIT", "10000/m/ip,10000/m/user")  # a page, a ticket
configure()
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop shares this thread

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from bench.console_proxy import portal_desktop, start_websockify  # noqa: E402
from vdi.testing.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from vdi.testing.processes import ServerProcess  # noqa: E402
from vdi.testing.vnc_screen import vnc_screen  # noqa: E402

PASSWORD = "b3nch-pw"  # noqa: S105 (the throwaway screen's; VNC uses 8 characters)
SETTLE = 1.0  # seconds between one run's end and the next run's empty-cache load
BEFORE = "before the bundle (the issue's numbers): 0.85 s empty, 0.33-0.42 s warm, " \
         "53 JavaScript requests, 600 KB uncompressed"
# The page notes its own first frame: the canvas's draw calls are wrapped, and the first
# animation frame after the screen's canvas holds an opaque pixel is the one that shows it.
# Nothing else runs in the page while it loads (Playwright's wait_for_function puts its own
# script into the page, and the page's main thread paid for it in the measurement).
FIRST_FRAME = """(() => {
  let seen = false;
  for (const name of ["drawImage", "putImageData", "fillRect"]) {
    const draw = CanvasRenderingContext2D.prototype[name];
    CanvasRenderingContext2D.prototype[name] = function (...args) {
      const result = draw.apply(this, args);
      if (!seen && this.canvas.isConnected && this.canvas.width
          && this.getImageData(0, 0, 1, 1).data[3] === 255) {
        seen = true;
        requestAnimationFrame(() => console.log(`FIRST_FRAME ${performance.now()}`));
      }
      return result;
    };
  }
})();"""
TRAFFIC = """() => {
  const entries = performance.getEntriesByType("resource");
  const nav = performance.getEntriesByType("navigation")[0];
  const all = [nav, ...entries];
  return {
    requests: all.length,
    scripts: entries.filter((e) => e.initiatorType === "script" || e.name.endsWith(".js")).length,
    transferred: all.reduce((n, e) => n + (e.transferSize || 0), 0),
    decoded: all.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
  };
}"""
PEER_PAGE = """<!doctype html><meta charset="utf-8"><title>noVNC</title>
<div id="screen"></div>
<script type="module">
import RFB from "./core/rfb.js";
new RFB(document.getElementById("screen"), `ws://${location.host}/websockify`,
        {shared: true, credentials: {password: "PASSWORD"}});
</script>
""".replace("PASSWORD", PASSWORD)


def load(page: Page, url: str) -> dict[str, Any]:
    with page.expect_console_message(lambda message: message.text.startswith("FIRST_FRAME "),
                                     timeout=30_000) as first_frame:
        page.goto(url, wait_until="commit")
    result: dict[str, Any] = page.evaluate(TRAFFIC)
    result["first frame s"] = float(first_frame.value.text.split()[1]) / 1000
    return result


def measure(browser: Any, url: str, runs: int, cookies: list[dict[str, Any]]
            ) -> dict[str, list[dict[str, Any]]]:
    """``runs`` empty-cache loads, each followed by a warm one, after one of each that is not
    counted (the server's and the browser's first requests warm what every later one uses)."""
    results: dict[str, list[dict[str, Any]]] = {"empty": [], "warm": []}
    for run in range(runs + 1):
        time.sleep(SETTLE)
        context = browser.new_context()
        context.add_init_script(FIRST_FRAME)
        context.add_cookies(cookies)
        page = context.new_page()
        empty, warm = load(page, url), load(page, url)
        context.close()
        if run:
            results["empty"].append(empty)
            results["warm"].append(warm)
    return results


def report(results: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    peer = results["noVNC unbundled + websockify"]
    print("\nconsole page benchmark (peer = noVNC 1.7 from npm, unbundled, served by "
          "websockify --web; same QEMU, same run; medians)")
    print("| page | cache | first frame s | x peer | requests | scripts | transferred KB | "
          "decoded KB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, by_cache in results.items():
        for cache, runs in by_cache.items():
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            peer_median = statistics.median(run["first frame s"] for run in peer[cache])
            print(f"| {name} | {cache} | {median['first frame s']:.3f} | "
                  f"{median['first frame s'] / peer_median:.2f} | {median['requests']:.0f} | "
                  f"{median['scripts']:.0f} | {median['transferred'] / 1024:.0f} | "
                  f"{median['decoded'] / 1024:.0f} |")
    print(BEFORE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    call_command("collectstatic", interactive=False, verbosity=0)
    with vnc_screen(PASSWORD) as vnc_port:
        results = measure_both(args.runs, vnc_port)
    report(results)


def measure_both(runs: int, vnc_port: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    _user, desktop, session = portal_desktop(vnc_port, password=PASSWORD)
    web = Path(tempfile.mkdtemp(prefix="bench-novnc-"))
    novnc = settings.BASE_DIR / "frontend" / "node_modules" / "@novnc" / "novnc"
    for part in ("core", "vendor"):
        (web / part).symlink_to(novnc / part)
    (web / "index.html").write_text(PEER_PAGE)
    websockify, ws_port = start_websockify(vnc_port, web=web)
    server = ServerProcess(Path("/tmp/bench-console-page.log"))
    server.start()
    results = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            host = server.origin.split("://", 1)[1].split(":")[0]
            cookie = [{"name": "sessionid", "value": session, "domain": host, "path": "/"}]
            results["portal console page"] = measure(
                browser, f"{server.origin}/desktops/{desktop.pk}/console/", runs, cookie)
            results["noVNC unbundled + websockify"] = measure(
                browser, f"http://127.0.0.1:{ws_port}/index.html", runs, [])
            browser.close()
    finally:
        server.stop()
        os.killpg(websockify.pid, signal.SIGTERM)
        desktop.delete()
    return results


if __name__ == "__main__":
    main()

"""The README's screenshots of the web UI: docs/images/web-search.png and web-learnware.png.

Runs `examples/web_demo.py` (the demo market with `lwm web` in front of it) on a free port,
searches in Debian's chromium (driven by Playwright, no browser download) with the user's
statistical specification file the demo writes, saves the results page and the best
learnware's page, and stops the demo by its PID.

    .venv/bin/python tools/web_screenshot.py        # needs `make web-ui` and `chromium`
"""

from __future__ import annotations

import argparse
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from lwm.rpc.server import stop_process

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 900.0
WEB_UI_PREFIX = "Web UI: "
SPEC_PREFIX = "Try a statistical search with the specification file "


def read_lines(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    """Echo the demo's output and pass each line on; None when it ends."""
    for raw in stream:
        line = raw.decode(errors="replace")
        print(f"  demo | {line}", end="", flush=True)
        lines.put(line)
    lines.put(None)


def wait_for_demo(demo: subprocess.Popen[bytes]) -> tuple[str, Path]:
    """The web UI's URL and the user's specification file, once the demo prints them."""
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=read_lines, args=(demo.stdout, lines), daemon=True).start()
    url, spec = "", None
    deadline = time.monotonic() + START_TIMEOUT_S
    while not url:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"the demo printed no {WEB_UI_PREFIX!r} line within {START_TIMEOUT_S:.0f} s") from None
        if line is None:
            raise RuntimeError(f"the demo exited with code {demo.wait()} before printing {WEB_UI_PREFIX!r}")
        if line.startswith(SPEC_PREFIX):
            spec = Path(line[len(SPEC_PREFIX) :].strip())
        if line.startswith(WEB_UI_PREFIX):
            url = line[len(WEB_UI_PREFIX) :].strip()
    if spec is None:
        raise RuntimeError(f"the demo printed no {SPEC_PREFIX!r} line")
    return url, spec


def screenshots(url: str, spec: Path, out_dir: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    search_png, learnware_png = out_dir / "web-search.png", out_dir / "web-learnware.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.goto(url)
        page.get_by_label("Data type").select_option("Table")
        page.get_by_label("Task type").select_option("Classification")
        page.get_by_label("Statistical specification (JSON file)").set_input_files(str(spec))
        page.get_by_role("button", name="Search").click()
        page.locator("ol.results li").first.wait_for()
        page.screenshot(path=str(search_png), full_page=True)
        page.locator("ol.results li a").first.click()
        page.locator("#status").wait_for()
        page.screenshot(path=str(learnware_png), full_page=True)
        browser.close()
    return [search_png, learnware_png]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go (default docs/images)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium", help="the browser binary (default: Debian's chromium)")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ROOT / "examples" / "web_demo.py"), "--web-port", "0", "--learnwares", "4", "--work-dir", str(ROOT / ".lwm-examples" / "web-screenshot")]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url, spec = wait_for_demo(demo)
        for path in screenshots(url, spec, args.out_dir, args.chromium):
            print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    finally:
        code = stop_process(demo, grace_s=60)
    if code != 0:
        print(f"the demo exited with code {code}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

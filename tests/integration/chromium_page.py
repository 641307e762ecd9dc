# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open an HTML page in Debian's headless Chromium and read back what a script measured in it.

No DevTools client is needed: :func:`measure` copies the page, appends a ``<script>`` that runs after the
page's own script and writes its result (JSON) into a ``<pre id="measurements">`` element, and reads that
element back from ``chromium --dump-dom``. The window size sets the layout viewport, so layouts can be
measured at a given width. Shared by the layout tests and the report benchmark.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--hide-scrollbars",
)


def available() -> bool:
    return Path(CHROMIUM).exists()


def chromium(url: str, profile: Path, width: int, height: int, *mode: str,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with a fresh profile directory and the given window size."""
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *mode, url],
        capture_output=True, text=True, timeout=timeout, check=True,
    )


def with_script(page: Path, script: str, copy: Path) -> Path:
    """A copy of ``page`` with ``script`` run after everything else (appended after ``</html>``, which HTML
    parsers move into the body)."""
    with page.open("rb") as source, copy.open("wb") as target:
        shutil.copyfileobj(source, target, 1 << 22)
        target.write(f"\n<script>\n{script}\n</script>\n".encode())
    return copy


MEASUREMENTS = re.compile(r'<pre id="measurements">(.*?)</pre>', re.S)

RESULT_WRAPPER = """\
(function () {
  var result;
  try { result = (function () { %s }()); } catch (error) { result = {error: String(error && error.stack || error)}; }
  var out = document.createElement("pre");
  out.id = "measurements";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}());
"""


def measure(page: Path, script: str, *, width: int, height: int = 900, timeout: float = 300,
            screenshot: Path | None = None) -> Any:
    """Run ``script`` (a function body that returns a JSON-able value) in ``page`` at ``width`` px; its result.

    With ``screenshot``, a PNG of the same page at the same window size is written there too.
    """
    with tempfile.TemporaryDirectory(prefix="exchange-pki-chromium-") as directory:
        work = Path(directory)
        copy = with_script(page, RESULT_WRAPPER % script, work / page.name)
        dom = chromium(copy.as_uri(), work / "profile", width, height, "--dump-dom", timeout=timeout).stdout
        if screenshot is not None:
            chromium(page.as_uri(), work / "profile-shot", width, height, f"--screenshot={screenshot}",
                     timeout=timeout)
    found = MEASUREMENTS.search(dom)
    if found is None:
        raise AssertionError(f"the measuring script wrote nothing; the DOM starts {dom[:500]!r}")
    result = json.loads(html.unescape(found.group(1)))
    if isinstance(result, dict) and "error" in result:
        raise AssertionError(f"the measuring script failed: {result['error']}")
    return result

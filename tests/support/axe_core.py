"""axe-core, the accessibility rules engine, run inside a Playwright page.

axe-core comes from npm, pinned in tests/support/axe/package.json + package-lock.json. The first test
that needs it runs ``npm ci --no-audit --no-fund`` in tests/support/axe (into its node_modules,
ignored by git) under a file lock, so parallel sessions install once; later runs find
``node_modules/axe-core/axe.min.js`` and install nothing.

:func:`axe_violations` evaluates axe.min.js in the page (through the DevTools protocol, so the
checkout's Content-Security-Policy stays on) and returns what ``axe.run()`` found.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from playwright.sync_api import Page

logger = logging.getLogger(__name__)

AXE_DIR = Path(__file__).resolve().parent / "axe"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
_NPM_LOCK = Path(tempfile.gettempdir()) / "kassa-axe-npm-ci.lock"
_NPM_TIMEOUT = 600.0
SEVERE = ("serious", "critical")


class AxeUnavailable(RuntimeError):
    """npm is missing, or `npm ci` failed."""


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    nodes: tuple[str, ...]  # each: the element's selector and axe's summary of what is wrong

    def __str__(self) -> str:
        return f"[{self.impact}] {self.rule}: {self.help}\n    " + "\n    ".join(self.nodes)


def ensure_installed() -> Path:
    """axe.min.js, after ``npm ci`` in tests/support/axe when it is not there yet."""
    if AXE_JS.exists():
        return AXE_JS
    npm = shutil.which("npm")
    if npm is None:
        raise AxeUnavailable("npm not found: the accessibility tests install axe-core from npm")
    with _NPM_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be installing: wait for it
        try:
            if AXE_JS.exists():
                return AXE_JS
            logger.warning("installing axe-core from npm into %s (npm ci)", AXE_DIR / "node_modules")
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=AXE_DIR,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_NPM_TIMEOUT,
                check=False,
            )
            if done.returncode != 0 or not AXE_JS.exists():
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
                raise AxeUnavailable(f"npm ci in {AXE_DIR} failed (exit {done.returncode}):\n{tail}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return AXE_JS


@cache
def axe_source() -> str:
    return ensure_installed().read_text(encoding="utf-8")


_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    rule: v.id, impact: v.impact || "minor", help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\\s+/g, " ")),
  }));
}"""


def axe_violations(page: Page) -> list[Violation]:
    """Every violation of axe's default rules (WCAG 2.x A/AA and best practices) on the page."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    found = page.evaluate(_RUN)
    return [Violation(v["rule"], v["impact"], v["help"], tuple(v["nodes"])) for v in found]

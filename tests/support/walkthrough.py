"""Runs a doc's curl walk-through as written: every ```sh block in order, with bash and real curl;
`<!-- walkthrough: … -->` markers stand for what happens off-screen and go to `on_marker`."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
STEP = re.compile(r"```sh\n(?P<sh>.*?)```|<!-- walkthrough: (?P<marker>.*?) -->", re.DOTALL)


def steps(doc: Path) -> list[tuple[str, str]]:
    return [
        ("sh", m["sh"]) if m["sh"] is not None else ("marker", m["marker"].strip())
        for m in STEP.finditer(doc.read_text())
    ]


def run_walkthrough(
    doc: Path, env: dict[str, str], cwd: Path, on_marker: Callable[[str], None] = lambda _: None
) -> list[str]:
    """The standard output of each block; a block that exits non-zero fails the test."""
    outputs = []
    for kind, text in steps(doc):
        if kind == "marker":
            on_marker(text)
            continue
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", text],
            env={"PATH": os.environ["PATH"], **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{text}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        outputs.append(done.stdout)
    return outputs

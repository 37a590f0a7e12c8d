"""The committed console matches its sources: the OpenAPI it was typed against, the
generated types, and the bundle that `pip install` users get without npm.

The last two need the console's npm packages (`npm ci --prefix console`, which `.ci/run`
does); without them they skip, except in CI.
"""

from __future__ import annotations

import filecmp
import os
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "console"
STATIC = ROOT / "task_scheduler" / "console" / "static"
REBUILD = "run `npm run build:console` and commit the result"


def needs_node_modules() -> None:
    if (CONSOLE / "node_modules").is_dir() and shutil.which("node"):
        return
    if os.environ.get("CI"):
        pytest.fail("console/node_modules is missing: .ci/run runs npm ci --prefix console")
    pytest.skip("no console/node_modules (npm ci --prefix console)")


def test_the_committed_openapi_is_the_apps():
    openapi_text = runpy.run_path(str(ROOT / "scripts" / "dump-openapi"))["openapi_text"]
    assert (CONSOLE / "openapi.json").read_text(encoding="utf-8") == openapi_text(), REBUILD


def test_the_committed_types_are_generated_from_the_committed_openapi(tmp_path):
    needs_node_modules()
    generated = tmp_path / "api.d.ts"
    subprocess.run(
        [str(CONSOLE / "node_modules" / ".bin" / "openapi-typescript"), "openapi.json", "-o", str(generated)],
        cwd=CONSOLE,
        check=True,
        capture_output=True,
    )
    assert generated.read_text() == (CONSOLE / "src" / "api.d.ts").read_text(), REBUILD


def test_the_committed_bundle_is_built_from_the_sources(tmp_path):
    needs_node_modules()
    subprocess.run(["node", "build.mjs", str(tmp_path)], cwd=CONSOLE, check=True, capture_output=True)
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(STATIC) for p in STATIC.rglob("*") if p.is_file())
    assert built == committed, REBUILD
    stale = [str(p) for p in built if not filecmp.cmp(tmp_path / p, STATIC / p, shallow=False)]
    assert stale == [], REBUILD

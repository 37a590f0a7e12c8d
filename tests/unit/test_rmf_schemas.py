"""The packaged Open-RMF schemas are the shared reference copy, byte for byte.

The service validates against the packaged copy (installed without ``../shared``), so
a drift between the two would mean testing against one contract and shipping another.
"""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatch
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "task_scheduler" / "rmf_schemas"
SHARED = REPO.parent / "shared" / "rmf_schemas"
FOLDERS = ("rmf_api_msgs", "rmf_fleet_adapter")

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"no reference copy at {SHARED} to compare with"
)


def _json_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.json"))}


@needs_shared
@pytest.mark.parametrize("folder", FOLDERS)
def test_packaged_schemas_are_byte_identical_to_shared(folder: str) -> None:
    shared = _json_files(SHARED / folder)
    packaged = _json_files(PACKAGED / folder)

    assert shared, f"reference folder {SHARED / folder} holds no schema"
    assert sorted(packaged) == sorted(shared)
    differing = [name for name in shared if packaged[name] != shared[name]]
    assert differing == []


@needs_shared
def test_packaged_readme_states_the_shared_origin_commits() -> None:
    commits = re.findall(r"\b[0-9a-f]{40}\b", (SHARED / "README.md").read_text())
    readme = (PACKAGED / "README.md").read_text()

    assert len(commits) == 2
    for commit in commits:
        assert commit in readme


def test_packaged_readme_states_origin_and_licence() -> None:
    readme = (PACKAGED / "README.md").read_text()

    assert "open-rmf/rmf_api_msgs" in readme
    assert "open-rmf/rmf_ros2" in readme
    assert "Apache License 2.0" in readme
    assert len(re.findall(r"\bcommit [0-9a-f]{40}\b", readme)) == 2


def test_setup_py_ships_every_packaged_schema() -> None:
    """An installed service must find the files: setup.py's package_data covers them."""
    patterns = _package_data_patterns(REPO / "setup.py")
    shipped = [PACKAGED / "README.md", *sorted(PACKAGED.glob("*/*.json"))]
    package_root = REPO / "task_scheduler"

    missing = [
        str(path.relative_to(package_root))
        for path in shipped
        if not any(fnmatch(str(path.relative_to(package_root)), p) for p in patterns)
    ]
    assert len(shipped) > 60
    assert missing == []


def _package_data_patterns(setup_py: Path) -> list[str]:
    """Read ``package_data["task_scheduler"]`` from setup.py without running it."""
    for node in ast.walk(ast.parse(setup_py.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "package_data":
            package_data = ast.literal_eval(node.value)
            return list(package_data.get("task_scheduler", []))
    pytest.fail("setup.py declares no package_data")

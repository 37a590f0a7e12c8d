"""The ROS 2 launch file starts the real service with the config the integrator names.

No ROS is needed: the file is read as XML, and what it runs is checked against the
console script setup.py declares and the ``main`` that script points at, so a rename
on either side breaks this test rather than ``ros2 launch`` on a robot site.
"""

from __future__ import annotations

import ast
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "task_scheduler.launch.xml"
CONFIG_ENV = "RMF_TASK_SCHEDULER_CONFIG"


@pytest.fixture(scope="module")
def launch() -> ET.Element:
    return ET.parse(LAUNCH_FILE).getroot()


def test_root_is_a_launch_element(launch: ET.Element) -> None:
    assert launch.tag == "launch"
    assert {child.tag for child in launch} == {"arg", "executable"}


def test_config_file_argument_is_declared_empty_by_default(launch: ET.Element) -> None:
    args = launch.findall("arg")

    assert [arg.get("name") for arg in args] == ["config_file"]
    assert args[0].get("default") == ""
    assert args[0].get("description")


def test_executable_runs_the_console_command_on_screen(launch: ET.Element) -> None:
    executables = launch.findall("executable")

    assert len(executables) == 1
    assert executables[0].get("cmd") == "task_scheduler"
    assert executables[0].get("output") == "screen"


def test_config_file_reaches_the_service_through_its_env_var(
    launch: ET.Element,
) -> None:
    envs = launch.findall("executable/env")

    assert [(env.get("name"), env.get("value")) for env in envs] == [(CONFIG_ENV, "$(var config_file)")]


def test_every_substituted_variable_is_a_declared_argument(launch: ET.Element) -> None:
    declared = {arg.get("name") for arg in launch.iter("arg")}
    used = {
        name
        for element in launch.iter()
        for value in element.attrib.values()
        for name in re.findall(r"\$\(var ([^)\s]+)\)", value)
    }

    assert used
    assert used <= declared


def test_the_service_reads_the_env_var_the_launch_file_sets() -> None:
    literals = {
        node.value
        for path in sorted((REPO / "task_scheduler").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }

    assert CONFIG_ENV in literals


def test_command_is_a_console_script_whose_main_exists(launch: ET.Element) -> None:
    executable = launch.find("executable")
    assert executable is not None
    command = shlex.split(executable.get("cmd", ""))[0]
    scripts = _console_scripts(REPO / "setup.py")

    assert scripts.get(command) == "task_scheduler.cli:main"
    module, function = scripts[command].split(":")
    module_file = REPO.joinpath(*module.split(".")).with_suffix(".py")
    assert module_file.is_file(), f"{module_file} is missing"
    tree = ast.parse(module_file.read_text(encoding="utf-8"))
    top_level_functions = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert function in top_level_functions


def _console_scripts(setup_py: Path) -> dict[str, str]:
    """Read ``entry_points["console_scripts"]`` from setup.py without running it."""
    for node in ast.walk(ast.parse(setup_py.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entry_points = ast.literal_eval(node.value)
            scripts = (line.partition("=") for line in entry_points["console_scripts"])
            return {name.strip(): target.strip() for name, _, target in scripts}
    pytest.fail("setup.py declares no entry_points")

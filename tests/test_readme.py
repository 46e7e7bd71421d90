"""README.md's two commands stay true: CI runs the test command word for word."""

import re

from conftest import ROOT


def _commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.DOTALL)


def test_readme_has_a_setup_and_run_command_and_a_test_command():
    run, test = _commands()
    assert run.endswith("run.py") and "torch==2.13.0" in run
    assert test.endswith("-m pytest") and run.rsplit("&&", 1)[0] == test.rsplit("&&", 1)[0]


def test_ci_runs_the_readme_test_command_exactly():
    _, test = _commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines

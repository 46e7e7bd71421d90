"""README.md's commands run as written after its setup command: CI runs the test command word for word,
every command starts with a program the venv has (or a shell builtin), and the cheap ones run."""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, compose_config
from rnnlab.training.config_check import check_config

VENV_BIN = Path(sys.executable).parent  # the tests run in the venv the setup command made
BUILTINS = {".", "source", "cd", "export"}
# POSIX tools every machine has (coreutils), used in README recipes that prepare files
COREUTILS = {"mkdir", "cat", "cp", "mv", "ls"}


def _commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.DOTALL)


def readme_commands() -> list[str]:
    """Every command of the README's bash blocks: one per line, split at &&, comments dropped."""
    blocks = re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    lines = [line.split(" # ", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [part.strip() for line in lines if line and not line.startswith("#") for part in line.split("&&")]


def test_readme_has_a_setup_and_run_command_and_a_test_command():
    run, test = _commands()
    assert run.endswith("python run.py") and "torch==2.13.0" in run and ". .venv/bin/activate" in run
    assert test.endswith("python -m pytest") and run.rsplit("&&", 1)[0] == test.rsplit("&&", 1)[0]


def test_ci_runs_the_readme_test_command_exactly():
    _, test = _commands()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci_lines


def test_every_readme_command_starts_with_a_program_of_the_venv():
    commands = readme_commands()
    assert len(commands) > 30
    missing = [c for c in commands if shlex.split(c)[0] not in BUILTINS | COREUTILS and not (VENV_BIN / shlex.split(c)[0]).exists()]
    assert not missing, f"not in {VENV_BIN} after the setup command: {missing}"


def test_every_python_m_module_and_script_of_the_readme_exists():
    for words in (shlex.split(c) for c in readme_commands() if c.startswith("python ")):
        if words[1] == "-m":
            assert importlib.util.find_spec(words[2]) is not None, f"no module {words[2]}"
        elif not words[1].startswith("-"):
            assert (ROOT / words[1]).is_file(), f"no file {words[1]}"


def _run_py_overrides() -> list[list[str]]:
    """The overrides of each ``python run.py`` example (a sweep's first value of each list); placeholders skipped."""
    examples = []
    for command in readme_commands():
        words = shlex.split(command)
        if words[:2] != ["python", "run.py"] or "<" in command or "--help" in words or "--cfg" in words:
            continue
        overrides = [w for w in words[2:] if not w.startswith("-") and not w.startswith("hydra.")]
        examples.append([o if "/" in o.split("=")[0] else re.sub(r"=([^,]*),.*", r"=\1", o) for o in overrides])
    return examples


@pytest.mark.parametrize("overrides", _run_py_overrides(), ids=" ".join)
def test_readme_run_py_examples_compose_and_pass_the_config_check(overrides):
    check_config(compose_config([o for o in overrides if not o.startswith("hydra/")] or None, tiny=False))


def test_the_cheap_readme_commands_run_as_written():
    cheap = [c for c in readme_commands() if c.startswith("python run.py") and ("--help" in c or "--cfg job" in c)]
    assert cheap
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    for command in cheap:
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, f"{command}: {proc.stderr[-2000:]}"
        assert proc.stdout.strip()


def test_every_results_json_key_of_a_real_run_is_documented_in_the_repository(make_config):
    """The results.json contract lives in docs/results.md (the README links it), not outside the repository."""
    from rnnlab.training.train import train

    documented = (ROOT / "docs" / "results.md").read_text()
    runs = [train(make_config(["logger=none", "diagnostics.every_n_steps=1"], name="ok")),
            train(make_config(["logger=none", "trainer.devices=99"], name="failed"))]
    assert [r["status"] for r in runs] == ["ok", "failed"]
    import torch  # the kind of CPU is recorded: a seed's numbers repeat on it, not across kinds

    assert runs[0]["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert runs[0]["machine"]["threads"] == torch.get_num_threads() and runs[0]["machine"]["cpu"]
    for results in runs:
        for key, value in results.items():
            assert f"`{key}`" in documented, key
            if key in ("gradients", "embeddings", "param_budget", "early_stopping", "divergence", "machine"):
                names = {k.removeprefix("init_") for k in value}  # init_*: "the same with `init_`"
                assert all(f"`{k}`" in documented or f"{k}," in documented or f"{k}}}" in documented
                           for k in names), (key, value)
    readme = (ROOT / "README.md").read_text()
    assert "docs/results.md" in readme and "shared/" not in readme

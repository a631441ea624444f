"""`pip install sealkit` (no extras) gives three commands that work or say what to install.

`sealkit` and `sealkit-controller` need only the core dependencies; `vault-bootstrap` needs the
`vault` extra and, without it, prints one line naming it (exit 1, no traceback). The quick test
hides the extra's modules from a subprocess; the slow one installs the package into a fresh venv
from its source, as a user would, with pip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HINT = "pip install 'sealkit[vault]'"


def _run_hidden(*argv: str) -> subprocess.CompletedProcess[str]:
    # A None entry in sys.modules makes `import x` fail and find_spec(x) return None, exactly
    # as if the package were not installed.
    code = (
        "import sys\n"
        "sys.modules.update(dict.fromkeys(['hvac', 'pydantic', 'tenacity', 'psycopg']))\n"
        "from vault_bootstrap._entry import main\n"
        f"sys.argv = ['vault-bootstrap', *{list(argv)!r}]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


@pytest.mark.parametrize("argv", [("--help",), ("validate", "config.yaml"), ("plan", "-c", "x")])
def test_vault_bootstrap_without_the_extra_names_it_in_one_line(argv: tuple[str, ...]) -> None:
    proc = _run_hidden(*argv)
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: vault-bootstrap needs the 'vault' extra")
    assert line.endswith(HINT) and "Traceback" not in proc.stderr


def test_vault_bootstrap_with_the_extra_runs_its_cli() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv=['vault-bootstrap','--help'];"
            "from vault_bootstrap._entry import main; main()",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "plan" in proc.stdout and "apply" in proc.stdout


@pytest.mark.slow
def test_a_plain_pip_install_gives_three_usable_commands(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    pip = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={k: v for k, v in os.environ.items() if k != "PIP_REQUIRE_VIRTUALENV"},
    )
    assert pip.returncode == 0, pip.stderr[-2000:]
    for command in ("sealkit", "sealkit-controller"):
        proc = subprocess.run(
            [str(bin_dir / command), "--version"], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, (command, proc.stderr)
        assert "version" in proc.stdout
    proc = subprocess.run(
        [str(bin_dir / "vault-bootstrap"), "validate", "x.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert line.endswith(HINT), line
    # The controller imports everything it needs at start-up: metrics included.
    proc = subprocess.run(
        [str(bin_dir / "python"), "-c", "import controller.main, controller.metrics; print('ok')"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == "ok", proc.stderr

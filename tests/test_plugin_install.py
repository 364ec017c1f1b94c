"""Installing the plugin keeps a user's torch: ranges in setup.py, the tested pair pinned in
constraints.txt, and the README's install command is the one CI runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _install_requires() -> dict[str, Requirement]:
    """setup.py's install_requires, evaluated from its module-level lists (no setup() run)."""
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    lists = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
    }
    call = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"
    )
    expr = next(k.value for k in call.keywords if k.arg == "install_requires")
    names: list[str] = []
    for part in ast.walk(expr):
        if isinstance(part, ast.Name):
            names += lists[part.id]
        elif isinstance(part, ast.List):
            names += ast.literal_eval(part)
    return {Requirement(r).name: Requirement(r) for r in names}


def test_torch_and_torchvision_are_ranges_that_hold_the_tested_pair() -> None:
    requires = _install_requires()
    pins = dict(
        re.findall(r"^(torch|torchvision)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    )
    assert set(pins) == {"torch", "torchvision"}
    for name in ("torch", "torchvision"):
        spec = requires[name].specifier
        assert not any(s.operator in ("==", "===", "~=") for s in spec), spec
        assert {s.operator for s in spec} >= {">=", "<"}, spec
        assert Version(pins[name]) in spec  # the tested pair is inside the declared range


def test_readme_install_command_is_cis_and_uses_the_constraints() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = re.search(r"^INSTALL='(.*)'$", ci, re.M).group(1)
    assert install == 'pip install -e ".[dev]" -c constraints.txt'
    assert install in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()


def test_installing_into_an_environment_with_torch_keeps_that_torch(tmp_path: Path) -> None:
    """pip's own resolver, offline, against this environment's packages: installing the
    plugin here (where a supported torch already is) installs the plugin and nothing else."""
    import json
    import subprocess
    import sys

    setuptools = pytest.importorskip("setuptools", reason="the offline build needs setuptools")
    if Version(setuptools.__version__) < Version("70.1"):  # builds wheels without `wheel`
        pytest.skip(f"setuptools {setuptools.__version__} here; the [dev] extra asks >= 70.1")
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
           "--no-build-isolation", "--quiet", "--report", str(report), "-e", str(ROOT)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    names = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert names == ["torchreid-pgflkd"], names  # torch and torchvision stay as they are

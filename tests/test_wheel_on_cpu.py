"""A wheel built from the repository installs and works outside a checkout: ``check-train`` composes the
packaged ``configs/``, ``segment --help`` and ``make-tiny`` run. The wheel is installed with ``--no-deps``
into a throwaway venv that sees this interpreter's dependencies through a ``.pth`` file (so nothing is
downloaded). Slow (a build, an install and three CLI starts): ``make test-wheel``, run by ``.ci/run``."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from segzero_plus.testing.tiny_models import TINY_QWEN_NAME

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "segzero_plus", "configs")

pytestmark = pytest.mark.wheel


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: rc {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _build_wheel(tmp: Path) -> Path:
    """``pip wheel --no-deps`` from a copy of the sources (the checkout stays free of build output)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "dist"), "."], src
    )
    (wheel,) = (tmp / "dist").glob("segzero_plus-*.whl")
    return wheel


def _venv_with_wheel(tmp: Path, wheel: Path) -> Path:
    """A fresh venv holding only the wheel; this interpreter's site-packages are reachable by a ``.pth``
    line (a plain path: the ``.pth`` files there, this checkout's editable install among them, stay off)."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp)
    python = venv / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp)
    Path(purelib.stdout.strip(), "base_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)], tmp)
    return venv


def test_wheel_ships_configs_and_runs_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert configs and {f"segzero_plus/{c}" for c in configs} <= names
    fixtures = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "segzero_plus/testing/fixtures").rglob("*")
        if p.is_file()
    }
    assert fixtures <= names

    venv = _venv_with_wheel(tmp_path, wheel)
    packaged = venv.resolve() / "lib"
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "SEGZERO_CONFIG_DIR", "SEGZERO_PLUS_CACHE")
    }
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "xdg"), WANDB_MODE="offline")
    cli = str(venv / "bin" / "segzero-plus")

    where = _run(
        [str(venv / "bin" / "python"), "-c", "import segzero_plus; print(segzero_plus.__file__)"],
        run_dir,
        env,
    )
    assert Path(where.stdout.strip()).resolve().is_relative_to(packaged)

    check = _run([cli, "check-train", "--dry-run"], run_dir, env)
    composed = next(line for line in check.stdout.splitlines() if "composes from" in line)
    config_dir = Path(composed.split("composes from ", 1)[1].split(" (", 1)[0])
    assert config_dir.is_relative_to(packaged) and config_dir.name == "configs", composed
    assert "pre-flight passed" in check.stdout

    assert "--image" in _run([cli, "segment", "--help"], run_dir, env).stdout

    _run([cli, "make-tiny", "--out", str(run_dir / "tiny"), "--sam", "tiny_test"], run_dir, env)
    assert (run_dir / "tiny" / TINY_QWEN_NAME / "model.safetensors").is_file()
    assert (run_dir / "tiny" / "sam" / "tiny_test.pt").is_file()

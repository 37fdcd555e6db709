"""Packaging metadata lives in pyproject.toml. This file only adds the repository's ``configs/`` tree to
built wheels as package data (``segzero_plus/configs``), which the training pre-flight falls back to when
the package runs outside a checkout (:func:`segzero_plus.train.verl_config.default_config_dir`)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / "configs"


class BuildPyWithConfigs(build_py):
    """``build_py`` that copies ``configs/`` into the built package (not for editable installs, which
    read the checkout's own ``configs/``)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "segzero_plus" / "configs"
            shutil.copytree(CONFIGS, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildPyWithConfigs})

"""The wheel ships every file of both packages, and every module imports from the installed
wheel alone (not from this source tree), with the console script resolving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pagerduty_api", "watchdog")
STEP_TIMEOUT = 60  # seconds for one pip or python step (each takes a few)

pytestmark = pytest.mark.timeout(120)

# Run with -S so that no .pth file of this venv runs (its editable install would map the
# packages to this source tree); the venv's site-packages still serve the dependencies.
# A __main__ module is located, not imported (importing runs the CLI); `python -m` runs it.
IMPORT_ALL = """
import importlib, importlib.metadata, importlib.util, json, pkgutil, sys
modules = {}
for name in sys.argv[1:]:
    package = importlib.import_module(name)
    modules[name] = package.__file__
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if info.name.endswith(".__main__"):
            modules[info.name] = importlib.util.find_spec(info.name).origin
        else:
            modules[info.name] = importlib.import_module(info.name).__file__
scripts = {ep.name: callable(ep.load())
           for ep in importlib.metadata.entry_points(group="console_scripts")
           if ep.dist is not None and ep.dist.name == "pd-watchdog"}
print(json.dumps({"modules": modules, "scripts": scripts}))
"""


def _not_source(name: str) -> bool:
    """What a checkout holds besides the project: venv, git, caches, build output."""
    return (
        name.startswith(".")
        or name in ("__pycache__", "build", "dist")
        or name.endswith((".egg-info", ".pyc"))
    )


def source_files() -> set[str]:
    """Every file of the packages in this source tree, as paths relative to the root."""
    files = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT)
            if path.is_file() and not any(_not_source(part) for part in relative.parts):
                files.add(relative.as_posix())
    return files


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=STEP_TIMEOUT, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built offline from a copy of this tree (a build in place would
    leave build/ behind, and a stale build/ can put deleted modules into a wheel)."""
    work = tmp_path_factory.mktemp("packaging")
    shutil.copytree(
        ROOT, work / "src", ignore=lambda folder, names: {n for n in names if _not_source(n)}
    )
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--no-index", "--quiet", "-w", str(work / "dist"), str(work / "src")])
    assert built.returncode == 0, (
        "building the wheel failed (it needs setuptools >= 70.1, in the test extras: "
        f"pip install -e '.[test]'):\n{built.stdout}\n{built.stderr}"
    )
    (found,) = (work / "dist").glob("pd_watchdog-*.whl")
    return found


def test_the_wheel_holds_exactly_the_files_of_the_source_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if ".dist-info/" not in name}
    expected = source_files()
    assert names == expected, (
        f"missing from the wheel: {sorted(expected - names)}; "
        f"in the wheel only: {sorted(names - expected)}"
    )


def test_every_module_imports_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "installed"
    installed = run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                     "--quiet", "--target", str(target), str(wheel)])
    assert installed.returncode == 0, installed.stderr
    paths = sysconfig.get_paths()
    dependencies = dict.fromkeys([paths["purelib"], paths["platlib"]])  # this venv's
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *dependencies])}
    result = run([sys.executable, "-S", "-c", IMPORT_ALL, *PACKAGES], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    modules = report["modules"]
    expected = {
        path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for path in source_files()
        if path.endswith(".py")
    }
    assert set(modules) == expected
    outside = {name: file for name, file in modules.items() if not file.startswith(str(target))}
    assert outside == {}, "imported from outside the installed wheel"
    assert report["scripts"] == {"pd-watchdog": True}
    version = run([sys.executable, "-S", "-m", "watchdog", "--version"], env=env, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip(), version.stderr

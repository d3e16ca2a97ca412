"""The wheel works on its own: built from this checkout, installed into a fresh virtual
environment, run from outside the source tree.

The package's subpackages are symlinks (``src/tagsweep/daemon -> ../../daemon``...); the
wheel must hold them as real files, with the templates, static assets and example
configurations they read at run time. The dependencies are not downloaded again: the
fresh environment sees the test environment's site-packages (installed from
``requirements.lock``) through a ``.pth`` line, after its own — so ``tagsweep`` is
imported from the wheel and never from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tagsweep.simulators.fleet_exports import generate

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LINKED = ["config", "daemon", "drivers", "engine", "simulators"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("tagsweep-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin folder."""
    env = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    deps = sysconfig.get_path("purelib")
    # after the fresh site-packages: the wheel's tagsweep wins over the editable install
    (purelib / "zz_locked_deps.pth").write_text(deps + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install",
         "--no-deps", "-q", str(wheel)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return env / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_wheel_holds_the_linked_folders_as_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for info in zf.infolist():
            # a symlink would be stored with S_IFLNK in the high bits of external_attr
            assert (info.external_attr >> 16) & 0o170000 != 0o120000, info.filename
    for folder in LINKED:
        sources = {
            p.relative_to(ROOT).as_posix()
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }
        assert sources, folder
        missing = sorted(s for s in sources if f"tagsweep/{s}" not in names)
        assert not missing, missing
    assert "tagsweep/py.typed" in names


def test_installed_wheel_runs_outside_the_checkout(fresh: Path, tmp_path: Path) -> None:
    where = run(fresh, "python", "-c", "import tagsweep; print(tagsweep.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(fresh.parent), where.stdout
    version = run(fresh, "tagsweep", "version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert "0.1.0" in version.stdout
    examples = Path(where.stdout.strip()).parent / "config" / "examples"
    check = run(fresh, "tagsweep", "config", "check", str(examples / "handheld.toml"), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_installed_wheel_reconciles(fresh: Path, tmp_path: Path) -> None:
    exports = generate(tmp_path / "exports", n_assets=200, per_type=2, seed=3)
    sources = [f"--source={name}:{preset}={path}" for name, (preset, path) in
               exports.sources.items()]  # fmt: skip
    frozen = run(fresh, "tagsweep", "reconcile", "freeze", *sources, "--out", "snap", cwd=tmp_path)
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    counts = [f"--count={p}" for p in exports.counts]
    result = run(
        fresh, "tagsweep", "reconcile", "run", "--snapshot", "snap", *counts, "--out", "run",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # the report template comes from the wheel
    assert (tmp_path / "run" / "report.html").stat().st_size > 0
    assert shutil.which("tagsweep", path=str(fresh))


def test_readme_install_steps_pin_through_the_lock_and_name_real_files() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("### Install as a service")
    block = readme[start : readme.index("```\n", readme.index("```sh", start) + 5)]
    assert "pip install -c requirements.lock ." in block
    assert "/etc/tagsweep/reconcile.toml" in block  # what the reconcile unit reads
    for word in block.split():
        if word.startswith(("config/", "systemd/")):
            matches = list(ROOT.glob(word))
            assert matches, f"the install steps name {word}, which does not exist"

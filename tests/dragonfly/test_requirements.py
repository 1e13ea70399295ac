"""The two lock files stay what the Makefile says: requirements.lock exactly what running needs,
requirements-dev.lock exactly the test and dev tools on top; and `make` picks a supported Python."""

import os
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _closure(requirements: list[str]) -> set[str]:
    """Every distribution the requirements pull in, as installed here (markers evaluated)."""
    seen: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        extras = seen.get(name)
        if extras is not None and set(requirement.extras) <= extras:
            continue
        seen[name] = (extras or set()) | set(requirement.extras)
        for raw in metadata.requires(requirement.name) or []:
            sub = Requirement(raw)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": extra}) for extra in seen[name] | {""}
            ):
                todo.append(sub)
    return set(seen)


def _pins(path: Path) -> dict[str, str]:
    """The pins that apply to this interpreter (a pin's environment marker evaluated)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.partition(" #")[0].strip()
        if not line or line.startswith(("#", "-r ")):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        pinned = len(specifiers) == 1 and specifiers[0].operator == "=="
        assert pinned, f"{path.name}: {line!r} is not pinned exactly"
        if requirement.marker is None or requirement.marker.evaluate():
            pins[canonicalize_name(requirement.name)] = specifiers[0].version
    return pins


def test_requirements_lock_holds_exactly_what_running_needs_and_dev_the_rest():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    run = _closure(project["dependencies"])
    dev = _closure(project["optional-dependencies"]["dev"]) - run
    run_pins = _pins(ROOT / "requirements.lock")
    dev_pins = _pins(ROOT / "requirements-dev.lock")

    assert set(run_pins) == run, "requirements.lock must pin exactly the runtime closure"
    assert set(dev_pins) == dev, "requirements-dev.lock must pin exactly the dev closure"
    assert "-r requirements.lock" in (ROOT / "requirements-dev.lock").read_text().splitlines()
    installed = {name: metadata.version(name) for name in run | dev}
    assert {**run_pins, **dev_pins} == installed
    for direct in project["dependencies"]:
        requirement = Requirement(direct)
        assert str(requirement.specifier) == f"=={run_pins[canonicalize_name(requirement.name)]}"


def test_python_requirement_and_the_tools_agree_on_3_11_to_3_13():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == ">=3.11,<3.14"
    assert pyproject["tool"]["ruff"]["target-version"] == "py311"  # the oldest supported


def _make_python(path_dirs: list[Path]) -> str:
    env = {**os.environ, "PATH": os.pathsep.join(str(d) for d in path_dirs)}
    # A variable set on the outer make's command line (`.ci/run`: make test PYTHON=python3.11)
    # reaches this one through MAKEFLAGS and would override the choice under test.
    for inherited in ("PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(inherited, None)
    result = subprocess.run(
        ["make", "-s", "python"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _interpreter(version: str) -> Path:
    """A real interpreter of that version on this machine (pyenv's), or skip."""
    for candidate in sorted(Path("/root/.pyenv/versions").glob(f"{version}.*")):
        exe = candidate / "bin" / f"python{version}"
        if exe.exists():
            return exe
    found = shutil.which(f"python{version}")
    if found is None:
        pytest.skip(f"no Python {version} on this machine")
    return Path(found)


def test_make_uses_python3_when_it_is_supported_and_a_newer_one_when_it_is_not(tmp_path):
    system = tmp_path / "system"  # only the tools make itself needs, and the interpreters below
    system.mkdir()
    for tool in ("make", "sh", "id", "echo"):
        (system / tool).symlink_to(shutil.which(tool))

    old = tmp_path / "old"
    old.mkdir()
    (old / "python3").symlink_to(_interpreter("3.10"))
    assert _make_python([system, old]) == ""  # nothing supported: the Makefile says so

    (old / "python3.13").symlink_to(_interpreter("3.13"))
    (old / "python3.12").symlink_to(_interpreter("3.12"))
    assert _make_python([system, old]) == "python3.13"  # python3 is 3.10: the newest instead

    current = tmp_path / "current"
    current.mkdir()
    (current / "python3").symlink_to(_interpreter("3.12"))
    assert _make_python([system, current, old]) == "python3"  # python3 is 3.12: use it


def test_make_run_without_a_supported_python_stops_with_a_clear_message(tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "requirements-dev.lock"):
        shutil.copy(ROOT / name, clone / name)
    system = tmp_path / "system"
    system.mkdir()
    for tool in ("make", "sh", "id", "echo", "test"):
        if shutil.which(tool):
            (system / tool).symlink_to(shutil.which(tool))
    (system / "python3").symlink_to(_interpreter("3.10"))
    result = subprocess.run(
        ["make", "install"],
        cwd=clone,
        env={"PATH": str(system), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no Python 3.11, 3.12 or 3.13 found" in result.stderr
    assert not (clone / ".venv").exists()

"""`make deps` installs fonts-noto-cjk when its font file is missing, whether or not chromium
(or anything else) is installed; nothing when it is there."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _make_deps(tmp_path: Path, font: str) -> str:
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: the venv step is skipped
    # SUDO=echo: the apt-get commands are printed instead of run.
    out = subprocess.run(
        ["make", "-s", "-C", str(REPO), "deps", f"STAMP={stamp}", f"CJK_FONT={font}",
         "SUDO=echo"], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("redis-server") is None,
                    reason="needs make and redis-server")
def test_missing_font_is_installed(tmp_path) -> None:
    out = _make_deps(tmp_path, str(tmp_path / "no-such-font.ttc"))
    assert "apt-get install -y -qq fonts-noto-cjk" in out


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("redis-server") is None,
                    reason="needs make and redis-server")
def test_present_font_installs_nothing(tmp_path) -> None:
    font = tmp_path / "font.ttc"
    font.touch()
    assert "apt-get" not in _make_deps(tmp_path, str(font))

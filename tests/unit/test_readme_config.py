"""Every HUIZHEN_* variable that server/config.py reads is in the README configuration table."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _config_variables() -> set[str]:
    source = (ROOT / "server" / "config.py").read_text(encoding="utf-8")
    return set(re.findall(r'"(HUIZHEN_[A-Z0-9_]+)"', source))


def _readme_table_variables() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    first_cells = [row.split("|")[1] for row in rows]
    return {name for cell in first_cells for name in re.findall(r"`(HUIZHEN_[A-Z0-9_]+)`", cell)}


def test_config_reads_a_known_set_of_variables() -> None:
    # The scan itself must find what config.py reads (a regex that found nothing would pass).
    assert {"HUIZHEN_PORT", "HUIZHEN_DATA_DIR", "HUIZHEN_TLS_CERT_FILE"} <= _config_variables()


def test_every_variable_config_reads_is_in_the_readme_table() -> None:
    missing = _config_variables() - _readme_table_variables()
    assert not missing, f"add these to README.md's configuration table: {sorted(missing)}"

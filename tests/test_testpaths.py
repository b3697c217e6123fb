"""Every app's tests run in CI: a tests/ folder outside pytest.ini's testpaths is silently skipped
by `make test` (it happened twice when new apps were merged)."""
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_tests_folder_is_in_testpaths():
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    listed = set(ini["pytest"]["testpaths"].split())
    folders = {p.parent.name for p in ROOT.glob("*/tests") if p.is_dir() and any(p.glob("test_*.py"))}
    assert folders - listed == set(), f"tests/ folders missing from pytest.ini testpaths: {sorted(folders - listed)}"

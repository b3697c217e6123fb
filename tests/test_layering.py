"""No app imports another app's views: what endpoints share lives below them (network.endpoint,
the service modules). Only the URL table (stalwart_site/urls.py) names every app's views."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = sorted(p.parent.name for p in ROOT.glob("*/apps.py"))
URL_TABLE = ROOT / "stalwart_site" / "urls.py"


def _is_views(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last == "views" or last.endswith("_views")


def imported_modules(path: Path):
    """(line, module) for every import in the file, `from a import b` giving a.b as well as a."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def foreign_view_imports() -> list[str]:
    found = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if path == URL_TABLE:
                continue
            for line, module in imported_modules(path):
                top = module.split(".", 1)[0]
                if top in APPS and top != app and _is_views(module):
                    found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


def test_the_walk_sees_the_apps_and_the_url_table():
    # The check below would pass vacuously if the walk found nothing.
    assert {"jmapapi", "oauth", "contactform", "network", "stalwart_site"} <= set(APPS)
    assert any(_is_views(m) and m.startswith("jmapapi") for _, m in imported_modules(URL_TABLE))


def test_no_app_imports_another_apps_views():
    assert foreign_view_imports() == []


def test_the_check_catches_a_foreign_views_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from jmapapi.views import authenticate\nimport oauth.api_views\nfrom jmapapi import views\n")
    modules = {m for _, m in imported_modules(sample)}
    assert {"jmapapi.views", "oauth.api_views", "jmapapi.views"} <= modules
    assert all(_is_views(m) for m in ("jmapapi.views", "oauth.api_views"))

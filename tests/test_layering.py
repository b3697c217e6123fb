"""No app imports another app's views: what endpoints share lives below them (network.endpoint,
the service modules). Only the URL table (stalwart_site/urls.py) names every app's views."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def apps_of(root: Path) -> list[str]:
    return sorted(p.parent.name for p in root.glob("*/apps.py"))


APPS = apps_of(ROOT)
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


def foreign_view_imports(root: Path = ROOT) -> list[str]:
    found, apps, url_table = [], apps_of(root), root / "stalwart_site" / "urls.py"
    for app in apps:
        for path in (root / app).rglob("*.py"):
            if path == url_table:
                continue
            for line, module in imported_modules(path):
                top = module.split(".", 1)[0]
                if top in apps and top != app and _is_views(module):
                    found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_the_walk_sees_the_apps_and_the_url_table():
    # The check below would pass vacuously if the walk found nothing.
    assert {"jmapapi", "oauth", "contactform", "network", "stalwart_site"} <= set(APPS)
    assert any(_is_views(m) and m.startswith("jmapapi") for _, m in imported_modules(URL_TABLE))


def test_no_app_imports_another_apps_views():
    assert foreign_view_imports() == []


def test_the_check_catches_a_foreign_views_import(tmp_path):
    for app in ("alpha", "beta", "stalwart_site"):
        (tmp_path / app).mkdir()
        (tmp_path / app / "apps.py").write_text("")
        (tmp_path / app / "views.py").write_text("")
    (tmp_path / "stalwart_site" / "urls.py").write_text("from alpha import views\nfrom beta import views as b\n")
    (tmp_path / "alpha" / "services.py").write_text("from alpha.views import x\nfrom beta import api_views\n")
    (tmp_path / "beta" / "models.py").write_text("import alpha.views\nfrom alpha.views import helper\n")
    found = foreign_view_imports(tmp_path)
    assert found == ["alpha/services.py:2 imports beta.api_views", "beta/models.py:1 imports alpha.views",
                     "beta/models.py:2 imports alpha.views"], found

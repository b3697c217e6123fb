"""A serving process settles once its code is loaded (stalwart_site/settle.py): the view
modules are imported and the objects that live as long as the process are out of the
garbage collector's full walks, which otherwise pause one request in a hundred for ~100 ms."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.live import ROOT

PROBE = """
import gc, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")
import django
django.setup()
import importlib.util
spec = importlib.util.spec_from_file_location("gconf", "gunicorn.conf.py")
conf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conf)
before = gc.get_freeze_count()
assert "jmapapi.views" not in sys.modules
conf.post_worker_init(None)
print(before, gc.get_freeze_count(), len(gc.get_objects()), "jmapapi.views" in sys.modules, "dav.views" in sys.modules)
"""


def test_a_gunicorn_worker_freezes_what_it_loaded(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "STALWART_VAR_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    before, frozen, tracked, views, dav = out.stdout.split()
    assert int(before) == 0
    # Django, the apps and every view module: tens of thousands of objects, none left to walk.
    assert int(frozen) > 50_000
    assert int(tracked) < 1_000
    assert views == dav == "True"

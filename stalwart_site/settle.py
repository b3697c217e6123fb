"""What a long-running process does once its code is loaded and before it serves.

Python's cyclic garbage collector walks every tracked object in a full collection: in a loaded
worker that is some 140,000 objects (Django, the apps, the URL patterns, the declarations) and
about 100 ms on this hardware, taken in the middle of whichever request allocated last. Those
objects live as long as the process, so they are moved out of the collector's sight
(`gc.freeze()`); what requests allocate is still collected as before. The URL configuration is
imported first, since Django otherwise loads the views on the first request.
"""
from __future__ import annotations

import gc


def settle() -> None:
    # why: gunicorn.conf.py calls this in the bare servers of bench/ too, where Django is not set
    # up; nothing of Django is imported before it is needed.
    from django.conf import settings

    if settings.configured:  # not in the bare servers bench/ measures beside the project
        # why: as above; the URL resolver only once settings exist.
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - imports every view module now
    gc.collect()
    gc.freeze()

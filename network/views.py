"""The fallthrough (settings' handler404): a path no route answers.

A machine path gets the reference's 404 problem+json through the endpoint decorator, like
every machine endpoint; a page path keeps Django's HTML page for people.
"""
from django.views import defaults

from .endpoint import not_found as machine_not_found
from .middleware import is_machine

_machine = machine_not_found()


def not_found(request, exception=None):
    if is_machine(request):
        return _machine(request)
    return defaults.page_not_found(request, exception)

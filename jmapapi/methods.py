"""The method table: Core/echo (engine) and x:T/get|set|query|changes for every declaration."""
from registry.declaration import declarations
from registry.declaration import version as registry_version

from . import blob_methods  # noqa: F401  (Blob/* join METHODS when imported)
from . import quota_methods  # noqa: F401  (Quota/* likewise)
from . import webpush_methods  # noqa: F401  (PushSubscription/* and the webpush-vapid capability)
from .account_methods import AccountMethods, ApiKeyMethods, AppPasswordMethods
from .engine import METHODS, STALWART, Method
from .registry_methods import RegistryMethods

# Object types whose methods are specialised have a subclass here (other apps add theirs: OAuthClient).
HANDLERS: dict[str, type[RegistryMethods]] = {
    "Account": AccountMethods, "AppPassword": AppPasswordMethods, "ApiKey": ApiKeyMethods,
}


_installed = None
# The x:* names the last install() put in METHODS, so that a declaration taken out loses them.
_declared_methods: set[str] = set()


def install() -> None:
    """Build the x:* methods from the declarations: once all apps have declared theirs, and
    again whenever the registry changes (a declaration added later, e.g. by a test)."""
    global _installed
    version = registry_version()
    if _installed == version:
        return
    _installed = version
    for name in _declared_methods:
        METHODS.pop(name, None)
    _declared_methods.clear()
    for decl in declarations().values():
        handler = HANDLERS.get(decl.name, RegistryMethods)(decl)
        ops = {"get": handler.get, "set": handler.set, "changes": handler.changes}
        if not decl.singleton:
            ops["query"] = handler.query
        for op, fn in ops.items():
            name = f"{decl.jmap_name}/{op}"
            # Reads need no transaction of their own; /set writes each object in its own.
            METHODS[name] = Method(name, fn, STALWART, transactional=op == "set")
            _declared_methods.add(name)

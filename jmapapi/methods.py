"""The method table: Core/echo (engine) and x:T/get|set|query|changes for every declaration."""
from registry.declaration import declarations

from .account_methods import AccountMethods, ApiKeyMethods, AppPasswordMethods
from .engine import METHODS, STALWART, Method
from .registry_methods import RegistryMethods

# Object types whose methods are specialised have a subclass here (other apps add theirs: OAuthClient).
HANDLERS: dict[str, type[RegistryMethods]] = {
    "Account": AccountMethods, "AppPassword": AppPasswordMethods, "ApiKey": ApiKeyMethods,
}


_installed = False


def install() -> None:
    """Build the x:* methods from the declarations (once all apps have declared theirs)."""
    global _installed
    if _installed:
        return
    _installed = True
    for decl in declarations().values():
        handler = HANDLERS.get(decl.name, RegistryMethods)(decl)
        ops = {"get": handler.get, "set": handler.set, "changes": handler.changes}
        if not decl.singleton:
            ops["query"] = handler.query
        for op, fn in ops.items():
            name = f"{decl.jmap_name}/{op}"
            # Reads need no transaction of their own; /set writes each object in its own.
            METHODS[name] = Method(name, fn, STALWART, transactional=op == "set")

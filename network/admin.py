from registry.admin import register_declared

from . import objects  # noqa: F401

register_declared("network")

"""The Settings › Network › HTTP › Contact form page, built from the declaration (registry.admin)."""
from registry.admin import register_declared

from . import objects  # noqa: F401  (declarations)

register_declared("contactform")

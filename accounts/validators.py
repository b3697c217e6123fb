"""Validators that the models and the discovery fields share (a module of its own, so that
discovery, which models imports, need not import models)."""
from django.core.validators import RegexValidator

domain_name_validator = RegexValidator(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "Enter a valid domain name in lower case.",
    code="invalid",
)

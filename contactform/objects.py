from registry.composites import RateChoice
from registry.declaration import ObjectType, register

from . import models

HTTP_FORM = register(ObjectType(
    model=models.HttpForm, name="HttpForm", singleton=True, section="Settings › Network › HTTP › Contact form",
    description="The contact form endpoint /form: static websites post a form to it and the server mails each "
    "submission to the configured recipients.",
    groups=[
        ("General", ["enable", "deliver_to", "max_size"]),
        ("Spam protection", ["rate_limit_count", "rate_limit_period", "validate_domain", "field_honey_pot"]),
        ("Form fields", ["field_email", "default_from_address", "field_name", "default_name", "field_subject",
                         "default_subject"]),
    ],
    composites=[RateChoice("rateLimit", "rate_limit_count", "rate_limit_period")],
))

"""System checks of the sending settings (ids submission.E050…E079)."""
from __future__ import annotations

from django.conf import settings
from django.core import checks


@checks.register()
def check_submission_settings(app_configs=None, **kwargs) -> list[checks.Error]:
    errors = []
    for i, (name, low) in enumerate((("SUBMISSION_MAX_RECIPIENTS", 1), ("SUBMISSION_MAX_SIZE", 1),
                                     ("SUBMISSION_RETRY_FIRST", 1), ("SUBMISSION_RETRY_MAX", 1),
                                     ("SUBMISSION_GIVE_UP_AFTER", 1))):
        value = getattr(settings, name, None)
        if not isinstance(value, int) or value < low:
            errors.append(checks.Error(f"{name} must be an integer of at least {low}, got {value!r}.",
                                       id=f"submission.E05{i}"))
    if not errors and settings.SUBMISSION_RETRY_MAX < settings.SUBMISSION_RETRY_FIRST:
        errors.append(checks.Error("SUBMISSION_RETRY_MAX must not be below SUBMISSION_RETRY_FIRST.",
                                   id="submission.E055"))
    return errors

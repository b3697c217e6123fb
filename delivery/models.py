"""The account's Sieve scripts (RFC 9661): the text is a blob held in the blob store."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class SieveScript(models.Model):
    """One script of an account. Its text is the blob `blob_id` (the account holds it with a
    Hold of kind "sievescript" and this row's id); at most one script per account is active."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=512)
    blob_id = models.CharField(max_length=64)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="delivery_sievescript_name_unique"),
            models.UniqueConstraint(fields=["account"], condition=Q(is_active=True),
                                    name="delivery_sievescript_one_active"),
        ]

    def __str__(self):
        return f"{self.name} (account {self.account_id})"

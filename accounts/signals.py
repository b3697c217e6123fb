"""Signals other apps listen to without accounts knowing them."""
from django.dispatch import Signal

# Sent (sender=Account, account=…) after an account's password was set: whatever was granted on
# the strength of the old password (OAuth tokens) must go.
password_changed = Signal()

"""Who may a submitted message say it is from (RFC 8621 §7.5): the check EmailSubmission/set
runs before it relays anything. One function, so the rule is the same whoever submits."""
from __future__ import annotations

from collections.abc import Sequence

from accounts.models import Account
from registry.errors import SetError

from . import addresses
from .identities import ForbiddenFrom
from .models import Identity


class ForbiddenMailFrom(SetError):
    """RFC 8621 §7.5: the envelope's MAIL FROM is not an address the user may use."""

    type = "forbiddenMailFrom"


def check(account: Account, identity: Identity, from_addresses: Sequence[str], sender_addresses: Sequence[str] = (),
          mail_from: str | None = None) -> SetError | None:
    """None when `account` may send this message as `identity`; otherwise the SetError to answer.

    `from_addresses` and `sender_addresses` are the addresses of the parsed message's From and
    Sender header fields; `mail_from` the envelope's (None when the client gave no envelope: the
    server then uses the identity's address or the Sender, RFC 8621 §7).

    - The identity must be the account's, and its address still one the account may send as
      (an alias removed since the identity was made no longer is): else forbiddenFrom.
    - Every From address and the Sender must be addresses the account may send as, and the
      identity must be the message's author: the Sender when there is one, else one of the
      From addresses (a `*@domain` identity matches any address of the domain): else forbiddenFrom.
    - The envelope's MAIL FROM, when given, must be an address the account may send as (the
      null reverse path "" is for bounces, not for users): else forbiddenMailFrom.
    """
    if identity.account_id != account.pk:
        return ForbiddenFrom("This identity is not one of the account's.")
    allowed = addresses.send_as(account)
    if not addresses.may_use_identity_email(account, identity.email, allowed):
        return ForbiddenFrom(f"The account may no longer send as {identity.email}.")
    if not from_addresses:
        return ForbiddenFrom("The message has no From address.")
    for address in [*from_addresses, *sender_addresses]:
        if not addresses.is_address(address) or not allowed.allows(address):
            return ForbiddenFrom(f"The account may not send as {address}.")
    if len(sender_addresses) > 1:
        return ForbiddenFrom("The message has more than one Sender address.")
    authors = sender_addresses or from_addresses
    if not any(allowed.matches(identity.email, address) for address in authors):
        return ForbiddenFrom(f"The message's {'Sender' if sender_addresses else 'From'} is not the identity's "
                             f"address {identity.email}.")
    if mail_from is not None and not (addresses.is_address(mail_from) and allowed.allows(mail_from)):
        return ForbiddenMailFrom(f"The account may not use {mail_from or '<>'} as the envelope sender.")
    return None

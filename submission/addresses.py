"""Which addresses an account may send as: its own address, its enabled aliases, and any
address of a domain where it owns the catch-all alias `*@domain`. Identities (RFC 8621 §6),
the From/Sender check of EmailSubmission (§7.5) and the envelope check all ask here, so one
rule decides for every face."""
from __future__ import annotations

import re
from dataclasses import dataclass

from accounts.models import Account, Alias

WILDCARD = "*"
# RFC 5321 §4.5.3.1.3: a path is at most 256 octets, so an address at most 254.
MAX_ADDRESS_LENGTH = 254
# An addr-spec as a client writes one: no spaces, no controls, no angle brackets, exactly one
# "@" with something on each side. Quoted local parts are not taken as identities.
_ADDRESS = re.compile(r"^[^\s@<>()\[\],;:\\\"\x00-\x1f\x7f]+@[^\s@<>()\[\],;:\\\"\x00-\x1f\x7f]+$")


def normalise(address: str) -> str:
    return address.strip().lower()


def is_address(value) -> bool:
    """Whether `value` is an address this server can relay: a string shaped as local@domain."""
    return (isinstance(value, str) and 3 <= len(value) <= MAX_ADDRESS_LENGTH and _ADDRESS.match(value) is not None
            and not value.endswith(".") and ".." not in value.split("@", 1)[1])


@dataclass(frozen=True)
class SendAs:
    """What one account may put in From, Sender and MAIL FROM."""

    addresses: frozenset[str]
    # Domains of the account's `*@domain` aliases: any address there is its own.
    domains: frozenset[str]

    def allows(self, address: str) -> bool:
        """Whether the account may send as `address` (a literal address, or `*@domain` for an
        identity that stands for the whole domain)."""
        if not isinstance(address, str) or "@" not in address:
            return False
        address = normalise(address)
        return address in self.addresses or address.rpartition("@")[2] in self.domains

    def matches(self, identity_email: str, address: str) -> bool:
        """Whether `address` is what an identity of `identity_email` stands for."""
        identity_email, address = normalise(identity_email), normalise(address)
        local, _, domain = identity_email.rpartition("@")
        if local == WILDCARD:
            return address.rpartition("@")[2] == domain
        return identity_email == address


def send_as(account: Account) -> SendAs:
    """The account's addresses, read now (one query): an alias removed since an identity was
    made no longer counts."""
    addresses = {normalise(account.email_address)} if account.email_address else set()
    domains = set()
    for name, domain in Alias.objects.filter(account=account, enabled=True).values_list("name", "domain__name"):
        if name == WILDCARD:
            domains.add(domain.lower())
        else:
            addresses.add(f"{name}@{domain}".lower())
    return SendAs(frozenset(addresses), frozenset(domains))


def may_use_identity_email(account: Account, email: str, allowed: SendAs | None = None) -> bool:
    """Whether an identity may carry `email`: an address the account may send as, or `*@domain`
    for a domain whose catch-all alias the account owns (RFC 8621 §6.1)."""
    allowed = allowed or send_as(account)
    if not isinstance(email, str):
        return False
    local, _, domain = normalise(email).rpartition("@")
    if local == WILDCARD:
        return domain in allowed.domains
    return is_address(email) and allowed.allows(email)

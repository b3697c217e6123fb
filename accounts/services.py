"""Changes to an account that are more than "set these fields": creating it together with its
password, and replacing its aliases; and the server's public URL and default domain.

Views, admin pages, JMAP handlers and commands call the service modules and nothing else, so the
password policy, quotas, audit events, fail-to-ban and cache invalidation apply whoever asks.
The other service modules of this app: `credentials` (passwords, app passwords, API keys),
`login` (every login), `totp` (two-factor login) and `grants` (who may change whom).
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from registry import errors, ids
from registry import services as registry

from . import hashing
from .credentials import policy_error, set_password, validate_new_password
from .grants import authorize_account_admin
from .models import Account, Alias, Domain, SystemSettings
from .policy import PolicyViolation


def public_url(states: dict[str, int] | None = None) -> str:
    """The URL clients reach this server at: SystemSettings.publicUrl if set, else PUBLIC_URL."""
    return (registry.current(SystemSettings, states).public_url or settings.PUBLIC_URL).rstrip("/")


def default_domain_name() -> str:
    system = SystemSettings.load()
    if system.default_domain_id:
        return system.default_domain.name
    return settings.STALWART_DEFAULT_DOMAIN


def create_account(values: dict, actor, *, password: str | None = None) -> Account:
    """Create an account through the registry, with its password in the same transaction."""
    decl = Account._declaration
    if password is not None:
        probe = Account(name=values.get("name", ""), description=values.get("description", ""))
        domain = values.get("domain")
        if domain is not None:
            domain_name = Domain.objects.filter(pk=getattr(domain, "pk", domain)).values_list("name", flat=True).first()
            probe.email_address = f"{probe.name}@{domain_name}"
        if not hashing.is_password_hash(password):
            try:
                validate_new_password(probe, password)
            except PolicyViolation as exc:
                raise policy_error(exc) from None

    def with_password(account):
        if password is not None:
            set_password(account, password, actor, new_account=True)

    return registry.create(decl, values, actor, extra_save=with_password)


def set_aliases(account: Account, aliases: list[dict], actor) -> None:
    """Replace the aliases of `account` with `aliases` ({name, domain_id, enabled, description})."""
    # Aliases are not a takeover path, but another tenant's account is not there to change.
    authorize_account_admin(actor, account, set())
    seen = set()
    for item in aliases:
        key = (item["name"].strip().lower(), item["domain_id"])
        if key in seen:
            raise errors.InvalidProperties("The same alias is listed twice.", properties=["aliases"])
        seen.add(key)
    with transaction.atomic():
        account.aliases.all().delete()
        for item in aliases:
            alias = Alias(account=account, name=item["name"], domain_id=item["domain_id"],
                          enabled=item.get("enabled", True), description=item.get("description") or "")
            try:
                alias.full_clean(validate_constraints=False)
            except Exception as exc:  # noqa: BLE001
                message = " ".join(getattr(exc, "messages", [str(exc)]))
                raise errors.InvalidProperties(message or "Invalid alias.", properties=["aliases"]) from None
            if Alias.objects.filter(name=alias.name.lower(), domain_id=alias.domain_id).exists():
                raise errors.PrimaryKeyViolation("This alias belongs to another account.", properties=["aliases"])
            alias.save()
        registry.audit_event(actor, "Account", ids.encode(account.pk), "update", "aliases", None,
                             [f"{a['name']}@{a['domain_id']}" for a in aliases])
        # The aliases are part of x:Account: its state moves like for any other property.
        registry.touch("Account", ids.encode(account.pk), tenant_id=account.tenant_id)

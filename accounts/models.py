"""Principals (accounts and groups), roles, domains, tenants, credentials and the
Authentication and SystemSettings singletons."""
from __future__ import annotations

import hmac
import ipaddress
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from registry.crypto import EncryptedTextField
from registry.fields import NameSetField, StringListField
from registry.models import SingletonModel

from . import directory_checks
from . import permissions as catalogue
from .discovery import MailExchangersField, ServicesField, default_mail_exchangers, default_services
from .validators import domain_name_validator


def _permission_names():
    return catalogue.all_permissions()


class PermissionSetField(NameSetField):
    def __init__(self, *args, **kwargs):
        kwargs["allowed"] = _permission_names
        kwargs["schema_type"] = "Set<Permission>"
        super().__init__(*args, **kwargs)


# Names and labels are shown on pages, in logs and in JMAP answers: no control characters
# (a NUL also cannot be stored by PostgreSQL).
printable_validator = RegexValidator(r"^[^\x00-\x1f\x7f]*\Z", "Control characters are not allowed.", code="invalid")
# The session and the discovery documents advertise it: only an absolute http(s) URL.
public_url_validator = URLValidator(schemes=["http", "https"], message="Enter an absolute http:// or https:// URL.")

local_part_validator = RegexValidator(
    r"^[a-z0-9!#$&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$&'*+/=?^_`{|}~-]+)*$",
    "Enter a valid e-mail local part in lower case (no spaces, no '@', no '%').",
    code="invalid",
)


class PermissionsMode(models.TextChoices):
    INHERIT = "inherit", "Inherit from roles"
    MERGE = "merge", "Merge with roles"
    REPLACE = "replace", "Replace roles"


class Role(models.Model):
    # Optional, so null when absent: an empty string would be a name that names nothing
    # (refused in clean(), whichever face sends it).
    name = models.CharField(
        max_length=100, null=True, blank=True, validators=[printable_validator],
        help_text="Short identifier of the role (optional; the description is its label).",
    )
    description = models.CharField(max_length=255, validators=[printable_validator],
                                   help_text="Label of the role shown wherever roles are chosen.")
    tenant = models.ForeignKey(
        "Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="roles_owned",
        help_text="Tenant that owns this role, if any.",
    )
    parents = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="children",
        help_text="Roles whose permissions this role inherits.",
    )
    enabled_permissions = PermissionSetField(help_text="Permissions granted by this role.")
    disabled_permissions = PermissionSetField(
        help_text="Permissions denied by this role; a denial wins over any grant."
    )

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.description or self.name or f"Role {self.pk}"

    def clean(self):
        super().clean()
        if self.name is not None and not self.name.strip():
            raise ValidationError({"name": ValidationError(
                "A role name cannot be empty or blank; leave it out (null) for none.", code="invalid")})


class Tenant(models.Model):
    class RolesMode(models.TextChoices):
        DEFAULT = "default", "Default tenant roles"
        CUSTOM = "custom", "Custom roles"

    name = models.CharField(max_length=255, unique=True)
    description = models.CharField(max_length=255, blank=True)
    roles_mode = models.CharField(max_length=16, choices=RolesMode.choices, default=RolesMode.DEFAULT)
    roles = models.ManyToManyField(Role, blank=True, related_name="tenants")
    permissions_mode = models.CharField(max_length=16, choices=PermissionsMode.choices, default=PermissionsMode.INHERIT)
    enabled_permissions = PermissionSetField()
    disabled_permissions = PermissionSetField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# Defaults of the list fields: module-level functions, so that migrations can name them.
def default_attr_class(): return ["objectClass"]  # noqa: E704
def default_attr_description(): return ["description"]  # noqa: E704
def default_attr_email(): return ["mail"]  # noqa: E704
def default_attr_email_alias(): return ["mailAlias"]  # noqa: E704
def default_attr_member_of(): return ["memberOf"]  # noqa: E704
def default_attr_secret(): return ["userPassword"]  # noqa: E704
def default_attr_secret_changed(): return ["pwdChangeTime"]  # noqa: E704
def default_require_scopes(): return ["openid", "email"]  # noqa: E704


class Directory(models.Model):
    """An external directory: LDAP, SQL or OpenID Connect (the reference's multi-variant
    `Directory`). The columns of every variant live on one row; `kind` says which apply. The
    backends themselves are in the `directories` app, built from `directories.base` configs."""

    class Kind(models.TextChoices):
        LDAP = "ldap", "LDAP"
        SQL = "sql", "SQL"
        OIDC = "oidc", "OpenID Connect"

    class SecretKind(models.TextChoices):
        NONE = "none", "None"
        VALUE = "value", "Value"
        ENVIRONMENT_VARIABLE = "env", "Environment variable"
        FILE = "file", "File"

    class SqlStoreKind(models.TextChoices):
        DEFAULT = "default", "This server's database"
        POSTGRESQL = "postgresql", "PostgreSQL"
        MYSQL = "mysql", "MySQL / MariaDB"
        SQLITE = "sqlite", "SQLite"

    description = models.CharField(max_length=255, help_text="Short description of this directory.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.LDAP)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="directories")

    # --- Ldap ------------------------------------------------------------------------------
    url = models.CharField(max_length=2048, default="ldap://localhost:389", help_text="URL of the LDAP server.")
    timeout = models.DurationField(default=timedelta(seconds=30), help_text="Connection timeout to the server.")
    allow_invalid_certs = models.BooleanField(
        default=False, help_text="Allow invalid TLS certificates when connecting to the server.")
    use_tls = models.BooleanField(default=False, help_text="Use TLS (StartTLS on ldap://) to connect to the server.")
    base_dn = models.CharField(max_length=1024, blank=True,
                               help_text="The base distinguished name (DN) from where searches begin.")
    bind_dn = models.CharField(max_length=1024, null=True, blank=True,
                               help_text="The DN the server binds as to search the directory.")
    bind_secret_kind = models.CharField(max_length=8, choices=SecretKind.choices, default=SecretKind.NONE)
    bind_secret = EncryptedTextField(blank=True, default="", help_text="The password of the bind DN.")
    bind_secret_variable = models.CharField(max_length=255, blank=True, default="")
    bind_secret_file = models.CharField(max_length=1024, blank=True, default="")
    bind_authentication = models.BooleanField(
        default=True, help_text="Check passwords by binding as the user (on) or by reading and verifying the "
        "hash in attrSecret while bound as the bind DN (off).")
    filter_login = models.CharField(max_length=1024, default="(&(objectClass=inetOrgPerson)(mail=?))",
                                    help_text="Finds the account of a login address; ? stands for the address.")
    filter_mailbox = models.CharField(
        max_length=1024,
        default="(|(&(objectClass=inetOrgPerson)(|(mail=?)(mailAlias=?)))"
                "(&(objectClass=groupOfNames)(|(mail=?)(mailAlias=?))))",
        help_text="Finds users or groups by a recipient address or alias; ? stands for the address.")
    filter_member_of = models.CharField(
        max_length=1024, null=True, blank=True, default="(&(objectClass=groupOfNames)(member=?))",
        help_text="Finds the groups an account is member of; ? stands for the account's DN.")
    attr_class = StringListField(default=default_attr_class, help_text="Attributes giving the entry's type.")
    attr_description = StringListField(default=default_attr_description, help_text="Attributes of the description.")
    attr_email = StringListField(default=default_attr_email, help_text="Attributes of the primary address.")
    attr_email_alias = StringListField(default=default_attr_email_alias, help_text="Attributes of the aliases.")
    attr_member_of = StringListField(default=default_attr_member_of,
                                     help_text="Attributes listing the groups the entry belongs to.")
    attr_secret = StringListField(default=default_attr_secret,
                                  help_text="Attributes of the password hash (hash mode).")
    attr_secret_changed = StringListField(
        default=default_attr_secret_changed,
        help_text="Attributes that change with the password (bind mode): OAuth tokens stop working when they do.")
    group_class = models.CharField(max_length=255, default="groupOfNames",
                                   help_text="Object class of group entries.")
    pool_max_connections = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(8192)],
        help_text="Connections kept open to the server at most.")
    pool_timeout_create = models.DurationField(default=timedelta(seconds=30),
                                               help_text="How long to wait for a new connection.")
    pool_timeout_recycle = models.DurationField(default=timedelta(seconds=30),
                                                help_text="How long to wait for a connection to be recycled.")
    pool_timeout_wait = models.DurationField(default=timedelta(seconds=30),
                                             help_text="How long to wait for a free connection.")

    # --- Sql -------------------------------------------------------------------------------
    sql_store = models.CharField(max_length=12, choices=SqlStoreKind.choices, default=SqlStoreKind.DEFAULT,
                                 help_text="The database holding the accounts.")
    sql_host = models.CharField(max_length=253, blank=True, default="", help_text="Host name of the database server.")
    sql_port = models.PositiveIntegerField(null=True, blank=True,
                                           validators=[MinValueValidator(1), MaxValueValidator(65535)],
                                           help_text="Port of the database server (5432 or 3306 when empty).")
    sql_database = models.CharField(max_length=255, default="stalwart", blank=True, help_text="Name of the database.")
    sql_auth_username = models.CharField(max_length=255, null=True, blank=True, default="stalwart",
                                         help_text="User name to connect with.")
    sql_auth_secret_kind = models.CharField(max_length=8, choices=SecretKind.choices, default=SecretKind.NONE)
    sql_auth_secret = EncryptedTextField(blank=True, default="", help_text="Password to connect with.")
    sql_auth_secret_variable = models.CharField(max_length=255, blank=True, default="")
    sql_auth_secret_file = models.CharField(max_length=1024, blank=True, default="")
    sql_options = models.CharField(max_length=1024, null=True, blank=True, help_text="Additional connection options.")
    sql_path = models.CharField(max_length=1024, blank=True, default="", help_text="Path of the SQLite database.")
    sql_timeout = models.DurationField(null=True, blank=True, default=timedelta(seconds=15),
                                       help_text="Connection timeout to the database.")
    sql_use_tls = models.BooleanField(default=False, help_text="Use TLS to connect to the database.")
    sql_allow_invalid_certs = models.BooleanField(default=False,
                                                  help_text="Allow invalid TLS certificates of the database.")
    sql_pool_max_connections = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(8192)],
        help_text="Connections kept open to the database at most.")
    column_email = models.CharField(max_length=255, default="name", help_text="Column of the e-mail address.")
    column_secret = models.CharField(max_length=255, default="secret", help_text="Column of the password hash.")
    column_class = models.CharField(max_length=255, null=True, blank=True, default="type",
                                    help_text="Column of the account type (the value group makes a group).")
    column_description = models.CharField(max_length=255, null=True, blank=True, default="description",
                                          help_text="Column of the full name or description.")
    query_login = models.TextField(default="SELECT name, secret, description, type FROM accounts WHERE name = $1",
                                   help_text="Finds an account by its login address ($1).")
    query_recipient = models.TextField(
        default="SELECT name, secret, description, type FROM accounts WHERE name = $1 AND active = true",
        help_text="Finds an account by a recipient address or alias ($1).")
    query_member_of = models.TextField(null=True, blank=True,
                                       default="SELECT member_of FROM group_members WHERE name = $1",
                                       help_text="Lists the groups of an account ($1).")
    query_email_aliases = models.TextField(null=True, blank=True,
                                           default="SELECT address FROM emails WHERE name = $1",
                                           help_text="Lists the e-mail aliases of an account ($1).")

    # --- Oidc ------------------------------------------------------------------------------
    issuer_url = models.CharField(max_length=2048, blank=True, default="",
                                  help_text="Base URL of the OpenID Connect provider; its endpoints and keys are "
                                  "discovered from it.")
    require_audience = models.CharField(max_length=255, null=True, blank=True, default="stalwart",
                                        help_text="Tokens whose aud claim lacks this value are refused.")
    require_scopes = StringListField(default=default_require_scopes,
                                     help_text="Tokens lacking any of these scopes are refused.")
    claim_username = models.CharField(max_length=255, default="preferred_username",
                                      help_text="Claim holding the login name.")
    username_domain = models.CharField(max_length=253, null=True, blank=True,
                                       help_text="Domain appended to a login name without @.")
    claim_name = models.CharField(max_length=255, null=True, blank=True, default="name",
                                  help_text="Claim holding the display name.")
    claim_groups = models.CharField(max_length=255, null=True, blank=True,
                                    help_text="Claim holding the group memberships.")

    class Meta:
        verbose_name_plural = "directories"

    def __str__(self):
        return self.description

    def clean(self):
        super().clean()
        directory_checks.check(self)
        if self.tenant_id is not None and self.pk is not None and Authentication.objects.filter(
                directory_id=self.pk).exists():
            raise ValidationError({"tenant": ValidationError(
                "This directory is the server's login directory (Authentication): it cannot belong to a tenant.",
                code="directory_in_use")})


class Domain(models.Model):
    name = models.CharField(
        max_length=253, unique=True, validators=[domain_name_validator], help_text="Domain name, e.g. example.org."
    )
    description = models.CharField(max_length=255, blank=True)
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="domains")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def save(self, *args, **kwargs):
        self.name = (self.name or "").strip().lower()
        super().save(*args, **kwargs)

    def __str__(self):
        return self.name


# Families every user holds for their own data (the built-in User role): reading them is not
# administering the server.
SELF_SERVICE_PREFIXES = (
    "sysAccountPassword", "sysAccountSettings", "sysApiKey", "sysAppPassword",
    "sysMaskedEmail", "sysArchivedItem", "sysPublicKey", "sysSpamTrainingSample",
)


class AccountManager(BaseUserManager):
    def get_by_natural_key(self, username):
        return self.get(email_address=username)


class Account(AbstractBaseUser):
    """A user or a group. Users log in; groups share data and receive mail."""

    # Credentials live in Credential rows (one password, app passwords, API keys).
    password = None

    class Kind(models.TextChoices):
        USER = "user", "User"
        GROUP = "group", "Group"

    class RolesMode(models.TextChoices):
        USER = "user", "User (default user roles)"
        ADMIN = "admin", "Administrator (default admin roles)"
        DEFAULT = "default", "Default (default group roles)"
        CUSTOM = "custom", "Custom roles"

    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.USER)
    name = models.CharField(
        max_length=64, validators=[local_part_validator], help_text="Login name: the local part of the address."
    )
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="accounts")
    email_address = models.CharField(max_length=320, unique=True, editable=False)
    description = models.CharField(max_length=255, blank=True, help_text="Display name.")
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="accounts",
        help_text="Tenant this account belongs to (enterprise).",
    )
    roles_mode = models.CharField(
        max_length=16, choices=RolesMode.choices, default=RolesMode.USER,
        help_text="Users take the default user or admin roles, groups the default group roles, "
        "unless custom roles are chosen. Default roles are resolved at every login.",
    )
    roles = models.ManyToManyField(Role, blank=True, related_name="accounts", help_text="Custom roles.")
    permissions_mode = models.CharField(
        max_length=16, choices=PermissionsMode.choices, default=PermissionsMode.INHERIT
    )
    enabled_permissions = PermissionSetField(help_text="Permissions added to those of the roles.")
    disabled_permissions = PermissionSetField(help_text="Permissions removed from those of the roles.")
    member_groups = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="members", limit_choices_to={"kind": "group"},
        help_text="Groups this account is a member of.",
    )
    max_app_passwords = models.PositiveIntegerField(
        "maximum app passwords", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Overrides the default maximum number of app passwords (empty: use the default).",
    )
    max_api_keys = models.PositiveIntegerField(
        "maximum API keys", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Overrides the default maximum number of API keys (empty: use the default).",
    )
    max_disk_quota = models.PositiveBigIntegerField(
        "disk quota", null=True, blank=True,
        help_text="Maximum number of bytes the account may store (blobs, later messages); empty: unlimited.",
    )
    locale = models.CharField(max_length=16, default="en_US")
    # Set when the account is a mirror of an external directory's entry: its password and
    # second factor belong to that directory and cannot be changed here.
    directory = models.ForeignKey(
        Directory, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="mirrored_accounts",
        help_text="The external directory this account is mirrored from (none: a local account).",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive accounts cannot log in.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountManager()

    USERNAME_FIELD = "email_address"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email_address"]
        constraints = [models.UniqueConstraint(fields=["name", "domain"], name="account_name_domain_unique")]

    def __str__(self):
        return self.email_address or self.name

    def save(self, *args, **kwargs):
        self.name = (self.name or "").strip().lower()
        if self.domain_id:
            self.email_address = f"{self.name}@{self.domain.name}"
        super().save(*args, **kwargs)

    def clean(self):
        errors = {}
        if self.kind == self.Kind.GROUP and self.roles_mode in (self.RolesMode.USER, self.RolesMode.ADMIN):
            errors["roles_mode"] = ValidationError("A group takes its default roles or custom roles.", code="group_roles")
        if self.kind == self.Kind.USER and self.roles_mode == self.RolesMode.DEFAULT:
            errors["roles_mode"] = ValidationError(
                "A user takes the user or administrator roles, or custom roles.", code="user_roles"
            )
        if self.name and self.domain_id:
            address = f"{self.name.lower()}@{self.domain.name}"
            if Alias.objects.filter(name=self.name.lower(), domain_id=self.domain_id).exclude(account_id=self.pk).exists():
                errors["name"] = ValidationError(f"{address} is already an alias of another account.", code="alias_taken")
        if errors:
            raise ValidationError(errors)

    # --- what Django's auth and admin ask of a user ----------------------------------
    @property
    def audit_name(self) -> str:
        return self.email_address

    @property
    def is_recovery_admin(self) -> bool:
        return getattr(self, "_recovery", False)

    @property
    def permission_set(self) -> frozenset[str]:
        """The permissions of this session (memoised for the request)."""
        cached = getattr(self, "_permission_set", None)
        if cached is None:
            # authz computes permissions from these models and imports them: the user model
            # reaches it when asked, not when it is defined.
            from .authz import session_permissions

            cached = self._permission_set = session_permissions(self)
        return cached

    def has_stalwart_perm(self, name: str) -> bool:
        return self.is_active and name in self.permission_set

    @property
    def is_staff(self) -> bool:
        """May use the administration pages: holds any management read permission."""
        return self.is_active and any(
            p.startswith("sys") and p.endswith("Get") and not p.startswith(SELF_SERVICE_PREFIXES)
            for p in self.permission_set
        )

    @property
    def is_superuser(self) -> bool:
        return False

    def has_perm(self, perm, obj=None) -> bool:
        return self.has_stalwart_perm(perm)

    def has_module_perms(self, app_label) -> bool:
        return self.is_staff

    def get_session_auth_hash(self):
        """Sessions end when the password changes (the hash covers the stored hash)."""
        from .authz import recovery_secret  # authz imports these models: see permission_set

        secret = recovery_secret() if self.is_recovery_admin else self.password_hash_for_session()
        return salted_hmac("stalwart.session", secret or "", algorithm="sha256").hexdigest()

    def password_hash_for_session(self) -> str:
        cred = self.credentials.filter(kind=Credential.Kind.PASSWORD).only("pk", "secret_changed_at").first()
        return f"{cred.pk}:{cred.secret_changed_at.isoformat()}" if cred else ""

    def set_password(self, raw_password):  # pragma: no cover - guard
        raise NotImplementedError("Use accounts.credentials.set_password so that the policy applies.")

    def check_password(self, raw_password):  # pragma: no cover - guard
        raise NotImplementedError("Use accounts.login.authenticate.")

    def set_unusable_password(self):
        pass

    def has_usable_password(self):
        return self.credentials.filter(kind=Credential.Kind.PASSWORD).exists()


class Alias(models.Model):
    """Another address delivering to an account."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64, validators=[local_part_validator])
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="aliases")
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        verbose_name_plural = "aliases"
        constraints = [models.UniqueConstraint(fields=["name", "domain"], name="alias_name_domain_unique")]

    def __str__(self):
        return f"{self.name}@{self.domain.name}" if self.domain_id else self.name

    def clean(self):
        if self.name and self.domain_id and Account.objects.filter(name=self.name.lower(), domain_id=self.domain_id).exists():
            raise ValidationError({"name": ValidationError("This address belongs to an account.", code="address_taken")})

    def save(self, *args, **kwargs):
        self.name = (self.name or "").strip().lower()
        super().save(*args, **kwargs)


class Credential(models.Model):
    """A password, app password or API key of an account. Secrets are stored hashed only."""

    class Kind(models.TextChoices):
        PASSWORD = "password", "Password"
        APP_PASSWORD = "app_password", "App password"
        API_KEY = "api_key", "API key"

    class Scope(models.TextChoices):
        INHERIT = "inherit", "All permissions of the account"
        DISABLE = "disable", "The account's permissions except those listed"
        REPLACE = "replace", "Only the listed permissions (within the account's)"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="credentials")
    credential_id = models.PositiveIntegerField(help_text="Number of the credential within its account.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    secret_hash = models.CharField(max_length=512)
    # When the secret was last chosen (not when its hash was upgraded): web sessions end when it moves.
    secret_changed_at = models.DateTimeField(default=timezone.now)
    # The TOTP seed is in the URL: encrypted at rest (registry.crypto).
    otp_url = EncryptedTextField(max_length=512, blank=True, default="")
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    permissions_mode = models.CharField(max_length=16, choices=Scope.choices, default=Scope.INHERIT)
    permissions = PermissionSetField()
    allowed_ips = NameSetField(schema_type="Set<IpMask>", help_text="Addresses or networks it may be used from.")
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["account_id", "credential_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "credential_id"], name="credential_id_unique"),
            models.UniqueConstraint(fields=["account"], condition=Q(kind="password"), name="one_password_per_account"),
        ]

    def __str__(self):
        label = self.description or self.get_kind_display()
        return f"{label} ({self.account})"

    def is_expired(self, now) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class HashAlgorithm(models.TextChoices):
    ARGON2ID = "argon2id", "Argon2id"
    BCRYPT = "bcrypt", "Bcrypt"
    SCRYPT = "scrypt", "Scrypt"
    PBKDF2 = "pbkdf2", "Pbkdf2"


class PasswordStrength(models.TextChoices):
    ZERO = "zero", "Too guessable: risky password. (guesses < 10^3)"
    ONE = "one", "Very guessable: protection from throttled online attacks. (guesses < 10^6)"
    TWO = "two", "Somewhat guessable: protection from unthrottled online attacks. (guesses < 10^8)"
    THREE = "three", "Safely unguessable: moderate protection from offline slow-hash scenario. (guesses < 10^10)"
    FOUR = "four", "Very unguessable: strong protection from offline slow-hash scenario. (guesses >= 10^10)"


STRENGTH_SCORE = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4}


class Authentication(SingletonModel):
    """Authentication settings: password policy and default roles."""

    directory = models.ForeignKey(
        Directory, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="External directory used for authentication, or empty to use the internal directory.",
    )
    default_user_roles = models.ManyToManyField(
        Role, blank=True, related_name="+", help_text="Default roles to assign for accounts."
    )
    default_group_roles = models.ManyToManyField(
        Role, blank=True, related_name="+", help_text="Default roles to assign for groups."
    )
    default_tenant_roles = models.ManyToManyField(
        Role, blank=True, related_name="+",
        help_text="Default roles to assign for tenants in multi-tenant environments (enterprise).",
    )
    default_admin_roles = models.ManyToManyField(
        Role, blank=True, related_name="+", help_text="Default roles to assign for administrators."
    )
    password_hash_algorithm = models.CharField(
        max_length=16, choices=HashAlgorithm.choices, default=HashAlgorithm.ARGON2ID,
        help_text="Password hashing algorithm to use for storing user passwords in the internal directory.",
    )
    password_min_length = models.PositiveIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Minimum length for user passwords in the internal directory.",
    )
    password_max_length = models.PositiveIntegerField(
        default=128, validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Maximum length for user passwords in the internal directory.",
    )
    password_min_strength = models.CharField(
        max_length=8, choices=PasswordStrength.choices, default=PasswordStrength.THREE,
        help_text="Minimum strength for user passwords in the internal directory, calculated using the zxcvbn algorithm.",
    )
    password_default_expiry = models.DurationField(
        null=True, blank=True,
        help_text="Default expiration time for user passwords in the internal directory, after which the user "
        "will be required to change their password.",
    )
    max_app_passwords = models.PositiveIntegerField(
        "maximum app passwords", null=True, blank=True, default=5, validators=[MinValueValidator(1)],
        help_text="The default maximum number of app passwords a user can create (empty: unlimited).",
    )
    max_api_keys = models.PositiveIntegerField(
        "maximum API keys", null=True, blank=True, default=5, validators=[MinValueValidator(1)],
        help_text="The default maximum number of API keys a user can create (empty: unlimited).",
    )

    class Meta:
        verbose_name = "authentication"
        verbose_name_plural = "authentication"

    def __str__(self):
        return "Authentication settings"

    def clean(self):
        if self.directory_id is not None and Directory.objects.filter(
                pk=self.directory_id, tenant__isnull=False).exists():
            # A tenant's directory would decide who logs in to the whole server.
            raise ValidationError({"directory": ValidationError(
                "The login directory must belong to no tenant.", code="tenant_directory")})
        if (
            self.password_min_length is not None
            and self.password_max_length is not None
            and self.password_min_length > self.password_max_length
        ):
            message = (
                f"The minimum password length ({self.password_min_length}) may not exceed "
                f"the maximum password length ({self.password_max_length})."
            )
            raise ValidationError(
                {"password_min_length": ValidationError(
                    message, code="min_exceeds_max",
                    params={"properties": ["passwordMinLength", "passwordMaxLength"]},
                )}
            )


class IpMaskSetField(NameSetField):
    """A set of IP addresses and networks (CIDR), each checked on validation."""

    def __init__(self, *args, **kwargs):
        kwargs["schema_type"] = "Set<IpMask>"
        super().__init__(*args, **kwargs)

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        if len(value) > MAX_IP_MASKS:
            raise ValidationError("At most %(limit)s networks may be listed.", code="max_length",
                                  params={"limit": MAX_IP_MASKS})
        for item in value:
            validate_ip_mask(item)


MAX_IP_MASKS = 1000


def validate_ip_mask(value: str) -> None:
    """An IP address or a network in CIDR notation, written as Python's ipaddress reads it
    (no zone index, no surrounding spaces)."""
    try:
        if len(value) > 64 or "%" in value or value != value.strip():
            raise ValueError(value)
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValidationError("%(value)s is not an IP address or a network in CIDR notation.", code="invalid",
                              params={"value": value[:64]}) from None


class SystemSettings(SingletonModel):
    """Server-wide identity: host name, public URL, the default domain, and what the discovery
    documents (autoconfig, autodiscover, PACC, MTA-STS) advertise."""

    hostname = models.CharField(max_length=253, default="localhost", validators=[domain_name_validator],
                                help_text="Host name of this server, used for every service without a host name "
                                "of its own.")
    public_url = models.CharField(max_length=255, blank=True, validators=[public_url_validator],
                                  help_text="URL clients use to reach this server.")
    default_domain = models.ForeignKey(
        Domain, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Domain appended to login names given without one.",
    )
    services = ServicesField(
        default=default_services, blank=True, schema_type="Map<ServiceProtocol, Service>",
        help_text="The services advertised to clients (autoconfig, autodiscover, PACC), by protocol, each with "
        "its host name (null: the default host name) and whether its plain or STARTTLS port is advertised too. "
        "A protocol that is missing is not advertised.",
    )
    mail_exchangers = MailExchangersField(
        default=default_mail_exchangers, blank=True, schema_type="List<MailExchanger>",
        help_text="The mail exchangers (MX) of the hosted domains, each with its host name (null: the default "
        "host name) and priority; the MTA-STS policy lists their host names unless it names its own.",
    )
    proxy_trusted_networks = IpMaskSetField(
        help_text="The reverse proxies in front of this server (addresses or CIDR networks). Only a request "
        "whose direct peer is listed here has its Forwarded or X-Forwarded-For header honoured (when the HTTP "
        "service's useXForwarded is on), and these peers are never banned.",
    )

    class Meta:
        verbose_name = "system settings"
        verbose_name_plural = "system settings"

    def __str__(self):
        return "System settings"


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class AppPassword(Credential):
    """The app passwords of an account, as their own JMAP object type (a view over Credential)."""

    class Meta:
        proxy = True


class ApiKey(Credential):
    """The API keys of an account, as their own JMAP object type (a view over Credential)."""

    class Meta:
        proxy = True
        verbose_name = "API key"


class CredentialCounter(models.Model):
    """The highest credential number an account has ever used.

    App passwords and API keys are JMAP objects whose ids are these numbers, and clients cache
    by id: numbering from the largest remaining one would give a destroyed key's id to the next
    key. A row of its own, not a field of Account, so that a stale Account.save() cannot lower it.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_id = models.PositiveIntegerField(default=0)


class KnownPermission(models.Model):
    """A permission name the built-in roles have been brought up to date with
    (accounts.builtin_roles). A catalogue name missing here is new: the built-in roles whose
    rules cover it receive it once. A name an administrator later takes off a built-in role is
    known, and stays off."""

    name = models.CharField(max_length=100, unique=True)

    def __str__(self):
        return self.name

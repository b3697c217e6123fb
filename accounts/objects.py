"""Declarations of the management objects this app owns (see registry.declaration)."""
from registry.composites import PermissionsChoice, QuotaMap, RolesChoice, ScopeChoice, SecretKeyOptional, SqlAuthStore
from registry.declaration import TENANT_SELF, ObjectType, register
from registry.errors import Forbidden

from . import models
from . import permissions as permissions_catalogue
from .authz import _closure, _own, _role_graph, compute_account_permissions
from .grants import actor_permissions, authorize_account_admin, grant_message


def _drop_permission_caches(_obj):
    # Cached permission sets are keyed by the states of their inputs; nothing else to drop.
    pass


def _refuse_excess(actor, wanted) -> None:
    held = actor_permissions(actor)
    if held is None:
        return
    excess = [p for p in permissions_catalogue.ordered(set(wanted) - held)]
    if excess:
        raise Forbidden(grant_message(excess))


def _role_closure_permissions(role_ids) -> set[str]:
    enabled, disabled = _closure(_role_graph(), role_ids)
    return enabled - disabled


GRANTING = {"roles_mode", "roles", "permissions_mode", "enabled_permissions", "disabled_permissions", "tenant",
            "parents", "default_user_roles", "default_group_roles", "default_tenant_roles", "default_admin_roles"}


def _authorize_role(actor, role, changed):
    # The whole closure counts: a role inheriting an administrator role grants what that one does.
    if changed is None or changed & GRANTING:
        _refuse_excess(actor, _role_closure_permissions([role.pk]))


def _authorize_account(actor, account, changed):
    if changed is None or changed & GRANTING:
        _refuse_excess(actor, compute_account_permissions(account))


def _guard_account(actor, account, action, changed):
    authorize_account_admin(actor, account, {"destroy"} if action == "destroy" else changed)


def _authorize_tenant(actor, tenant, changed):
    if changed is None or changed & GRANTING:
        role_ids = list(tenant.roles.values_list("pk", flat=True))
        enabled, disabled = _own(tenant, role_ids, _role_graph())
        _refuse_excess(actor, enabled - disabled)


def _authorize_authentication(actor, auth, changed):
    if changed is None or changed & GRANTING:
        wanted = set()
        for name in ("default_user_roles", "default_group_roles", "default_tenant_roles", "default_admin_roles"):
            if changed is None or name in changed:
                wanted |= _role_closure_permissions(list(getattr(auth, name).values_list("pk", flat=True)))
        _refuse_excess(actor, wanted)


AUTHENTICATION = register(ObjectType(
    model=models.Authentication, name="Authentication", singleton=True,
    section="Settings › Authentication › General",
    description="Configures authentication settings including password policies and default roles.",
    groups=[
        ("Directory", ["directory"]),
        ("Default roles", ["default_user_roles", "default_group_roles", "default_tenant_roles", "default_admin_roles"]),
        ("Password policy", ["password_hash_algorithm", "password_min_length", "password_max_length",
                             "password_min_strength", "password_default_expiry"]),
        ("Credentials", ["max_app_passwords", "max_api_keys"]),
    ],
    on_change=_drop_permission_caches,
    authorize=_authorize_authentication,
    enum_names={"password_hash_algorithm": "PasswordHashAlgorithm", "password_min_strength": "PasswordStrength"},
))

SYSTEM_SETTINGS = register(ObjectType(
    model=models.SystemSettings, name="SystemSettings", singleton=True, section="Settings › System › General",
    description="Host name, public URL and default domain of the server, the reverse proxies it trusts, and "
    "the services and mail exchangers the discovery documents advertise.",
    groups=[("Server", ["hostname", "public_url", "default_domain"]),
            ("Network", ["proxy_trusted_networks"]),
            ("Discovery", ["services", "mail_exchangers"])],
    property_names={"hostname": "defaultHostname"},
))

ROLE = register(ObjectType(
    model=models.Role, name="Role", section="Management › Roles",
    description="A named set of permissions that accounts, groups and tenants take.",
    groups=[("Role", ["name", "description", "tenant", "parents"]),
            ("Permissions", ["enabled_permissions", "disabled_permissions"])],
    property_names={"tenant": "memberTenantId", "parents": "roleIds"},
    authorize=_authorize_role,
    tenant_scope="tenant",
))

TENANT = register(ObjectType(
    model=models.Tenant, name="Tenant", section="Management › Tenants",
    description="An organisation whose accounts and domains are administered apart (enterprise).",
    groups=[("Tenant", ["name", "description", "created_at"]),
            ("Roles and permissions", ["roles_mode", "roles", "permissions_mode", "enabled_permissions",
                                       "disabled_permissions"])],
    server_set=("created_at",),
    authorize=_authorize_tenant,
    tenant_scope=TENANT_SELF,
    composites=[
        RolesChoice("roles", "roles_mode", "roles", {"default": "Default", "custom": "Custom"}),
        PermissionsChoice("permissions", "permissions_mode", "enabled_permissions", "disabled_permissions"),
    ],
))

DOMAIN = register(ObjectType(
    model=models.Domain, name="Domain", section="Management › Domains",
    description="A mail domain served by this server.",
    groups=[("Domain", ["name", "description", "tenant", "created_at"])],
    property_names={"tenant": "memberTenantId"},
    server_set=("created_at",),
    tenant_scope="tenant",
))

_LDAP_FIELDS = (
    "url", "timeout", "allow_invalid_certs", "use_tls", "base_dn", "bind_dn", "bind_secret_kind", "bind_secret",
    "bind_secret_variable", "bind_secret_file", "bind_authentication", "filter_login", "filter_mailbox",
    "filter_member_of", "attr_class", "attr_description", "attr_email", "attr_email_alias", "attr_member_of",
    "attr_secret", "attr_secret_changed", "group_class", "pool_max_connections", "pool_timeout_create",
    "pool_timeout_recycle", "pool_timeout_wait",
)
_SQL_STORE_FIELDS = (
    "sql_store", "sql_host", "sql_port", "sql_database", "sql_auth_username", "sql_auth_secret_kind",
    "sql_auth_secret", "sql_auth_secret_variable", "sql_auth_secret_file", "sql_options", "sql_path",
    "sql_timeout", "sql_use_tls", "sql_allow_invalid_certs", "sql_pool_max_connections",
)
_SQL_FIELDS = _SQL_STORE_FIELDS + (
    "column_email", "column_secret", "column_class", "column_description", "query_login", "query_recipient",
    "query_member_of", "query_email_aliases",
)
_OIDC_FIELDS = ("issuer_url", "require_audience", "require_scopes", "claim_username", "username_domain",
                "claim_name", "claim_groups")

DIRECTORY = register(ObjectType(
    model=models.Directory, name="Directory", section="Settings › Authentication › Directories",
    description="Defines an external directory for account authentication and lookups (LDAP, SQL, OpenID "
    "Connect).",
    groups=[
        ("Directory", ["description", "kind", "tenant"]),
        ("LDAP server", ["url", "use_tls", "allow_invalid_certs", "timeout", "base_dn"]),
        ("Bind", ["bind_dn", "bind_secret_kind", "bind_secret", "bind_secret_variable", "bind_secret_file",
                  "bind_authentication"]),
        ("Filters", ["filter_login", "filter_mailbox", "filter_member_of"]),
        ("Attributes", ["attr_class", "attr_description", "attr_email", "attr_email_alias", "attr_member_of",
                        "attr_secret", "attr_secret_changed", "group_class"]),
        ("Connection pool", ["pool_max_connections", "pool_timeout_create", "pool_timeout_recycle",
                             "pool_timeout_wait"]),
        ("Database", list(_SQL_STORE_FIELDS)),
        ("Columns", ["column_email", "column_secret", "column_class", "column_description"]),
        ("Queries", ["query_login", "query_recipient", "query_member_of", "query_email_aliases"]),
        ("OpenID Connect provider", ["issuer_url", "require_audience", "require_scopes"]),
        ("Claims", ["claim_username", "username_domain", "claim_name", "claim_groups"]),
    ],
    property_names={"tenant": "memberTenantId", "kind": "@type"},
    secret=("bind_secret", "sql_auth_secret"),
    tenant_scope="tenant",
    json_values={"kind": {"ldap": "Ldap", "sql": "Sql", "oidc": "Oidc"}},
    variant_field="kind",
    variants={"ldap": _LDAP_FIELDS, "sql": _SQL_FIELDS, "oidc": _OIDC_FIELDS},
    variant_labels={"ldap": "LDAP Directory", "sql": "SQL Database", "oidc": "OpenID Connect"},
    composites=[
        SecretKeyOptional("bindSecret", "bind_secret_kind", "bind_secret", "bind_secret_variable",
                          "bind_secret_file", description="The password of the bind DN: none, a value (stored "
                          "encrypted), an environment variable or a file, read at each connection."),
        SqlAuthStore("store", "sql_", description="The database holding the accounts and groups: this server's "
                     "own, or a PostgreSQL, MySQL / MariaDB or SQLite database."),
    ],
    label_property="description",
))

ACCOUNT = register(ObjectType(
    model=models.Account, name="Account", section="Management › Accounts",
    description="A user or a group.",
    groups=[
        ("Account", ["kind", "name", "domain", "email_address", "description", "is_active", "tenant", "member_groups",
                     "locale", "created_at"]),
        ("Roles and permissions", ["roles_mode", "roles", "permissions_mode", "enabled_permissions",
                                   "disabled_permissions"]),
        ("Quotas", ["max_app_passwords", "max_api_keys", "max_disk_quota"]),
    ],
    property_names={"kind": "@type", "tenant": "memberTenantId", "is_active": "enabled"},
    server_set=("email_address", "created_at"),
    authorize=_authorize_account,
    guard=_guard_account,
    tenant_scope="tenant",
    composites=[
        RolesChoice("roles", "roles_mode", "roles",
                    {"user": "User", "admin": "Admin", "default": "Default", "custom": "Custom"}),
        PermissionsChoice("permissions", "permissions_mode", "enabled_permissions", "disabled_permissions"),
        QuotaMap("quotas", {"maxAppPasswords": "max_app_passwords", "maxApiKeys": "max_api_keys",
                             "maxDiskQuota": "max_disk_quota"}),
    ],
    json_values={"kind": {"user": "User", "group": "Group"}},
))


def _credential_view(model, name, label):
    return register(ObjectType(
        model=model, name=name, section=f"Account › {label}", admin=False, id_field="credential_id",
        description=f"The caller's own {label.lower()}; the secret is returned once, when it is created.",
        groups=[(label, ["description", "secret_hash", "created_at", "expires_at", "permissions_mode", "permissions",
                         "allowed_ips"])],
        property_names={"secret_hash": "secret"},
        server_set=("secret_hash", "created_at"), secret=("secret_hash",),
        composites=[ScopeChoice("permissions", "permissions_mode", "permissions")],
        tenant_scope="account__tenant",
    ))


APP_PASSWORD = _credential_view(models.AppPassword, "AppPassword", "App passwords")
API_KEY = _credential_view(models.ApiKey, "ApiKey", "API keys")

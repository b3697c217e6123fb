from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html

from directories import filters
from registry import declaration as decl_mod
from registry import services as registry
from registry.admin import DeclaredAdmin, form_values
from registry.admin_widgets import LabelledSplitDateTime
from registry.composites import SqlAuthStore

from . import credentials, external, hashing, services, usage
from .models import Account, Alias, Credential, Directory, Domain
from .policy import PolicyViolation
from .services import default_domain_name

# Django's own groups are not ours: accounts of kind "group" are.
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


class AccountForm(forms.ModelForm):
    new_password = forms.CharField(
        label="New password", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the current password. The password policy of "
        "Settings › Authentication applies; a recognised hash ($argon2id$…, {SSHA}…) is stored as given.",
    )
    new_password_confirm = forms.CharField(
        label="Confirm new password", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    password_expires_at = forms.SplitDateTimeField(
        label="Password expires at", required=False, widget=LabelledSplitDateTime,
        help_text="Empty: the default expiry of the settings applies to a new password; an expired password "
        "still logs in but may only be changed.",
    )

    class Meta:
        model = Account
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cred = self.instance.credentials.filter(kind=Credential.Kind.PASSWORD).first() if self.instance.pk else None
        if cred is not None:
            self.fields["password_expires_at"].initial = cred.expires_at

    def clean(self):
        data = super().clean()
        pw, confirm = data.get("new_password"), data.get("new_password_confirm")
        if pw or confirm:
            if pw != confirm:
                self.add_error("new_password_confirm", "The two passwords differ.")
            elif data.get("kind") == Account.Kind.GROUP:
                self.add_error("new_password", "Groups cannot log in and have no password.")
            else:
                probe = Account(pk=self.instance.pk, name=data.get("name") or "", description=data.get("description") or "")
                domain = data.get("domain")
                if isinstance(domain, Domain):
                    probe.email_address = f"{probe.name}@{domain.name}"
                if not hashing.is_password_hash(pw):
                    try:
                        credentials.validate_new_password(probe, pw)
                    except PolicyViolation as exc:
                        self.add_error("new_password", exc.message)
        return data


class LabelledDeleteFormSet(forms.BaseInlineFormSet):
    """Each row's Delete box named for screen readers: a table's inputs have column headings but
    no labels, and the box is there only on rows that exist (an account with aliases or keys)."""

    @classmethod
    def get_deletion_widget(cls):
        return forms.CheckboxInput(attrs={"aria-label": "Delete"})


class AccountPartInline(admin.TabularInline):
    """A part of an account (its credentials, its aliases): read with the account, changed with it."""

    formset = LabelledDeleteFormSet

    def has_change_permission(self, request, obj=None):
        return request.user.has_stalwart_perm("sysAccountUpdate")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_stalwart_perm("sysAccountUpdate")

    def has_view_permission(self, request, obj=None):
        return request.user.has_stalwart_perm("sysAccountGet")


class SecondaryCredentialInline(AccountPartInline):
    """App passwords and API keys: listed and revocable here; created by their owner."""

    model = Credential
    verbose_name = "app password or API key"
    verbose_name_plural = "App passwords and API keys (tick “Delete” to revoke)"
    fields = ("kind", "credential_id", "description", "created_at", "expires_at", "permissions_mode")
    readonly_fields = fields
    extra = 0
    can_delete = True
    show_change_link = False

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(kind=Credential.Kind.PASSWORD)

    def has_add_permission(self, request, obj=None):
        return False


class AliasInline(AccountPartInline):
    """The account's other addresses, saved all together through accounts.services.set_aliases
    (which checks them and writes the audit row); a refusal is shown on the form."""

    model = Alias
    verbose_name = "alias"
    verbose_name_plural = "Aliases (other addresses delivering to this account)"
    fields = ("name", "domain", "enabled", "description")
    extra = 1

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None:
            # A table's inputs have column headings but no labels: name each for screen readers.
            inner = getattr(field.widget, "widget", field.widget)
            inner.attrs.setdefault("aria-label", f"Alias {db_field.verbose_name}")
        return field

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "domain":
            # Another tenant's domains are neither offered nor accepted.
            kwargs["queryset"] = registry.scope(decl_mod.for_model(Domain), request.user, Domain.objects.all())
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_add_permission(self, request, obj=None):
        return request.user.has_stalwart_perm("sysAccountUpdate")


@admin.register(Account)
class AccountAdmin(DeclaredAdmin):
    form = AccountForm
    inlines = [AliasInline, SecondaryCredentialInline]
    list_display = ("email_address", "kind", "description", "roles_mode", "is_active", "last_login")
    # Only the domains of the accounts listed: the full list would name other tenants' domains.
    list_filter = ("kind", "roles_mode", "is_active", ("domain", admin.RelatedOnlyFieldListFilter))
    search_fields = ("email_address", "name", "description")

    def _fieldsets(self, request, obj=None):
        # The declaration's "Credential limits" are the account's quotas in the reference's terms.
        sets = [("Quotas" if title == "Credential limits" else title, {"fields": names})
                for title, names in self.decl.groups]
        sets.insert(1, ("Password", {"fields": ["new_password", "new_password_confirm", "password_expires_at"]}))
        return sets

    def get_fieldsets(self, request, obj=None):
        sets = self._fieldsets(request, obj)
        if obj is not None:
            for title, options in sets:
                if "max_disk_quota" in options["fields"]:
                    names = list(options["fields"])
                    names.insert(names.index("max_disk_quota") + 1, "disk_usage")
                    options["fields"] = names
        return sets

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj)) + ["last_login"]
        if obj is not None:
            fields.append("kind")  # a user does not turn into a group
            fields.append("disk_usage")
        return fields

    @admin.display(description="Disk used")
    def disk_usage(self, obj):
        used = usage.disk_usage(obj.pk)
        limit = obj.max_disk_quota
        if limit is None:
            return format_html('<span id="disk-usage">{} (no limit)</span>', usage.human_size(used))
        share = f" ({used * 100 // limit}%)" if used is not None and limit else ""
        return format_html('<span id="disk-usage" data-used="{}" data-limit="{}">{} of {}{}</span>',
                           "" if used is None else used, limit, usage.human_size(used), usage.human_size(limit),
                           share)

    def save_related(self, request, form, formsets, change):
        decl = self.decl
        pw = form.cleaned_data.get("new_password") or None
        expiry_changed = "password_expires_at" in form.changed_data
        expires = form.cleaned_data.get("password_expires_at")
        if change:
            account = registry.update(decl, form.instance.pk, form_values(decl, form, only_changed=True), request.user)
            if pw:
                kwargs = {"expires_at": expires} if expiry_changed else {}
                credentials.set_password(account, pw, request.user, **kwargs)
            elif expiry_changed:
                credentials.set_password_expiry(account, expires, request.user)
        else:
            account = services.create_account(form_values(decl, form, only_changed=False), request.user, password=pw)
            form.instance.pk = account.pk
            if expiry_changed and pw:
                credentials.set_password_expiry(account, expires, request.user)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change):
        if formset.model is Alias:
            return self._save_aliases(request, form, formset)
        if formset.model is not Credential:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)
        for cred in formset.deleted_objects:
            credentials.revoke_credential(cred.account, cred.credential_id, request.user)
            messages.info(request, f"Revoked {cred.get_kind_display().lower()} “{cred.description}”.")

    def _save_aliases(self, request, form, formset):
        # What formset.save() would have set; Django's change message reads them (the audit log,
        # not that message, records the change).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not formset.has_changed():
            return
        kept = []
        for alias_form in formset.forms:
            data = getattr(alias_form, "cleaned_data", None) or {}
            if not data or data.get("DELETE") or not data.get("name") or data.get("domain") is None:
                continue
            kept.append({"name": data["name"], "domain_id": data["domain"].pk, "enabled": data.get("enabled", True),
                         "description": data.get("description") or ""})
        account = Account.objects.get(pk=form.instance.pk)
        services.set_aliases(account, kept, request.user)

    def response_add(self, request, obj, post_url_continue=None):
        obj = Account.objects.get(pk=obj.pk)
        return super().response_add(request, obj, post_url_continue)


class DirectoryTestForm(forms.Form):
    login = forms.CharField(max_length=320, label="Login")
    password = forms.CharField(required=False, strip=False, label="Password (optional)",
                               widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))


# The Directory settings page: each field's explanation is its model help_text (what JMAP's
# schema and manage.py show too), followed by a note only where the page has more to say to
# an operator (an example, what an empty value means) or where the column has none of its own
# (the kind, a secret's four parts). Labels: the columns' names are the reference's property
# names in snake case, which would read poorly as labels.
DIRECTORY_LABELS = {
    "kind": "Kind", "tenant": "Tenant", "url": "Server URL", "use_tls": "StartTLS", "base_dn": "Base DN",
    "bind_dn": "Bind DN", "bind_secret_kind": "Bind password source", "bind_secret": "Bind password",
    "bind_secret_variable": "Bind password variable", "bind_secret_file": "Bind password file",
    "bind_authentication": "Check passwords by binding as the user", "filter_login": "Login filter",
    "filter_mailbox": "Recipient filter", "filter_member_of": "Member-of filter",
    "attr_class": "Class attributes", "attr_description": "Description attributes",
    "attr_email": "E-mail attributes", "attr_email_alias": "Alias attributes",
    "attr_member_of": "Member-of attributes", "attr_secret": "Password attributes",
    "attr_secret_changed": "Password-changed attributes", "sql_store": "Database", "sql_host": "Host",
    "sql_port": "Port", "sql_database": "Database name", "sql_auth_username": "User name",
    "sql_auth_secret_kind": "Password source", "sql_auth_secret": "Password",
    "sql_auth_secret_variable": "Password variable", "sql_auth_secret_file": "Password file",
    "sql_options": "Options", "sql_path": "SQLite file", "sql_timeout": "Timeout", "sql_use_tls": "TLS",
    "sql_allow_invalid_certs": "Allow invalid certificates", "sql_pool_max_connections": "Connections at most",
    "query_login": "Login query", "query_recipient": "Recipient query", "query_member_of": "Member-of query",
    "query_email_aliases": "Aliases query", "issuer_url": "Issuer URL", "require_scopes": "Required scopes",
    "username_domain": "Username domain",
}
_SECRET_SOURCE = "None, a value typed here (stored encrypted), an environment variable or a file."
DIRECTORY_NOTES = {
    "kind": "LDAP (OpenLDAP, Active Directory…), a SQL database, or an OpenID Connect provider. Chosen "
            "when the directory is added; to switch, use JMAP or manage.py with the new kind's settings.",
    "tenant": "The tenant this directory belongs to (empty: the whole server). The server's login "
              "directory (Authentication) must belong to no tenant.",
    "url": "ldap://host[:port], or ldaps://host[:port] for TLS from the start.",
    "base_dn": "E.g. dc=example,dc=org or ou=people,dc=example,dc=org.",
    "bind_dn": "E.g. cn=admin,dc=example,dc=org. Empty: an anonymous bind.",
    "bind_secret_kind": _SECRET_SOURCE + " Read at each new connection.",
    "bind_secret": "(Source: Value.)",
    "bind_secret_variable": "The environment variable holding the password (source: Environment variable).",
    "bind_secret_file": "The file holding the password, its first line (source: File).",
    "filter_login": "The address is escaped, so a login name cannot widen the search. The preview below "
                    "shows the filter for a sample address.",
    "filter_member_of": "Empty: the member-of attributes of the entry are used instead.",
    "attr_class": "One per line. Entries whose class is the group class are groups.",
    "attr_description": "One per line.", "attr_email": "One per line.", "attr_email_alias": "One per line.",
    "attr_member_of": "One per line (Active Directory: memberOf).", "attr_secret": "One per line.",
    "sql_store": "This server's own database, or another PostgreSQL, MySQL / MariaDB or SQLite one.",
    "sql_auth_secret_kind": _SECRET_SOURCE,
    "sql_auth_secret": "(Source: Value.)",
    "sql_auth_secret_variable": "The environment variable holding the password.",
    "sql_auth_secret_file": "The file holding the password, its first line.",
    "sql_options": "PostgreSQL only.",
    "query_login": "$1 is bound, never pasted into the query. One SELECT, with $1 only.",
    "query_member_of": "Empty: none.", "query_email_aliases": "Empty: none.",
    "issuer_url": "E.g. https://sso.example.org/realms/staff (/.well-known/openid-configuration is read "
                  "from there). https, or http for a provider on this machine.",
    "require_scopes": "One per line.",
    "username_domain": "E.g. john → john@example.org.",
}


def directory_help(name: str, own) -> str:
    """The settings page's explanation of a Directory field: the field's own help text (its
    model help_text), then the page's note."""
    return " ".join(part for part in (str(own or ""), DIRECTORY_NOTES.get(name, "")) if part)


@admin.register(Directory)
class DirectoryAdmin(DeclaredAdmin):
    """Settings › Authentication › Directories: one page per kind (registry's variants), every
    field explained, the login filter previewed with a sample address, and the "Test" form: look
    a login up (and check its password) and show the account it would mirror, creating nothing."""

    change_form_template = "admin/accounts/directory/change_form.html"
    list_display = ("description", "kind", "tenant")

    class Media:
        js = ("stalwart/directory-admin.js",)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        out = []
        for title, options in fieldsets:
            names = list(options.get("fields", ()))
            if "filter_login" in names:
                names.insert(names.index("filter_login") + 1, "login_filter_preview")
            out.append((title, {**options, "fields": names}))
        return out

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if self.variant(request, obj) == Directory.Kind.LDAP:
            fields = [*fields, "login_filter_preview"]
        return fields

    @admin.display(description="Login filter for a sample address")
    def login_filter_preview(self, obj):
        template = getattr(obj, "filter_login", None) or Directory._meta.get_field("filter_login").get_default()
        return format_html('<code id="login-filter-preview" data-sample="{}">{}</code>',
                           filters.SAMPLE, filters.render_filter(template, filters.SAMPLE))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in ("bind_secret", "sql_auth_secret"):
            # One line (a password), where an encrypted column's own widget is a text area.
            kwargs["widget"] = forms.TextInput
        elif db_field.name.startswith("filter_") or db_field.name in ("url", "issuer_url", "base_dn", "bind_dn"):
            kwargs["widget"] = forms.TextInput(attrs={"class": "vLargeTextField", "spellcheck": "false"})
        elif db_field.name.startswith("query_"):
            kwargs["widget"] = forms.Textarea(attrs={"rows": 3, "cols": 80, "spellcheck": "false"})
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None:
            field.label = DIRECTORY_LABELS.get(db_field.name, field.label)
            field.help_text = directory_help(db_field.name, field.help_text)
        return field

    def get_urls(self):
        view = self.admin_site.admin_view(self.test_view)
        return [path("<path:object_id>/test/", view, name="accounts_directory_test"), *super().get_urls()]

    def test_view(self, request, object_id):
        change_url = reverse("admin:accounts_directory_change", args=[object_id])
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        # Stricter than reading the page: the test reaches out to the directory with its secret.
        if not self.has_change_permission(request):
            raise PermissionDenied
        directory = self.get_object(request, object_id)
        if directory is None:
            # Missing, or another tenant's: the same answer, so neither is told from the other.
            raise Http404
        form = DirectoryTestForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Enter a login to test.")
            return redirect(change_url)
        secret = form.cleaned_data["password"] or None
        try:
            mapped = external.test_login(directory, form.cleaned_data["login"], secret, default_domain_name())
        except external.TestFailed as exc:
            messages.error(request, f"Test failed: {exc}")
        else:
            lines = "; ".join(f"{label}: {value}" for label, value in external.describe(mapped))
            messages.success(request, f"Test passed. {lines}")
        return redirect(change_url)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Which rows each kind of database uses, from the one list JMAP reads and writes.
        store = next(c for c in self.decl.composites if isinstance(c, SqlAuthStore))
        extra_context = {**(extra_context or {}), "sql_store_rows": store.fields_of()}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {**(extra_context or {}), "directory_test_form": DirectoryTestForm(),
                 "can_test_directory": self.has_change_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context=extra)

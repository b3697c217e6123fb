from functools import wraps

from django import forms
from django.contrib import admin
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import SuspiciousOperation
from django.shortcuts import redirect
from django.urls import path
from django.urls import reverse
from django.utils.text import slugify

from registry import declaration as decl_mod

from . import admin_views, dashboard


class LoginForm(AuthenticationForm):
    """Anyone with a login may sign in; refusals say why when it helps (bans, disabled logins).

    Accounts with two-factor login also give the code of their authenticator: without one, the
    form asks for it (the password was right); a wrong one fails like a wrong password, and
    counts towards fail-to-ban the same way.
    """

    otp = forms.CharField(
        label="One-time code", required=False, max_length=16,
        help_text="Only if two-factor login is on for your account.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "pattern": "[0-9 ]{6,10}", "spellcheck": "false"}),
    )

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        otp = "".join((self.cleaned_data.get("otp") or "").split()) or None
        if username is not None and password:
            if self.request is not None:
                self.request.auth_error = None
            self.user_cache = authenticate(self.request, username=username, password=password, otp=otp)
            if self.user_cache is None:
                exc = getattr(self.request, "auth_error", None)
                if exc is not None and exc.status == 402:
                    raise forms.ValidationError("Enter the one-time code from your authenticator.",
                                                code="mfa_required")
                if exc is not None and exc.status in (403, 429, 503):
                    raise forms.ValidationError(str(exc), code=exc.reason)
                if otp:
                    raise forms.ValidationError(
                        "Please enter a correct login, password and one-time code.", code="invalid_login")
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


# Pages with no declaration (the audit log) and where they go in the menu.
UNDECLARED_PLACES = {"registry.auditevent": ("Management", "Audit log")}
TOP_ORDER = {"Settings": 0, "Management": 1}
# Pages that are no object's (group, label, URL name, who sees them in the menu).
PAGES = [("Management", "Test delivery", "delivery-test", admin_views.can_test_delivery)]


def menu_place(model, app_name: str) -> tuple[str, str]:
    """(group, label) of a page: the section path split after its second part ("Settings ›
    Authentication" / "OpenID Connect"), or after its first when it has only two."""
    decl = decl_mod.for_model(model)
    if decl is None or not decl.section:
        return UNDECLARED_PLACES.get(model._meta.label_lower, (app_name, str(model._meta.verbose_name_plural)))
    parts = decl.section.split(" › ")
    if len(parts) >= 3:
        return " › ".join(parts[:2]), " › ".join(parts[2:])
    if len(parts) == 2:
        return parts[0], parts[1]
    return app_name, parts[0]


def menu_order(group: str) -> tuple:
    top = group.split(" › ")[0]
    return (TOP_ORDER.get(top, 2), group.count(" › "), group)


def search_terms(model, label: str, group: str, fields: set[str] | None = None) -> str:
    """What the menu's search box matches: the page's path and the labels of its fields (those
    of `fields` only, for one page of an object split over several)."""
    terms = [group, label]
    decl = decl_mod.for_model(model)
    if decl is not None:
        for prop in decl.props:
            if fields is None or prop.attname in fields:
                terms.append(decl.label_of(prop.attname))
    return " | ".join(terms).lower()


def settings_pages(model: dict, label: str) -> list[tuple[dict, str, set[str] | None]]:
    """The menu entries of one admin page: itself, or one per settings page of a declaration
    split over several ("HTTP › General", "HTTP › Security"), each with the fields it shows."""
    decl = decl_mod.for_model(model["model"])
    if decl is None or not decl.pages or not model.get("admin_url"):
        return [(model, label, None)]
    out = []
    opts = model["model"]._meta
    for title, _groups in decl.pages:
        entry = {**model, "object_name": model["object_name"] + title.replace(" ", ""),
                 "admin_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_page", args=[slugify(title)])}
        fields = {name for _group, names in decl.page_groups(title) for name in names}
        out.append((entry, f"{label} › {title}", fields))
    return out


class StalwartAdminSite(admin.AdminSite):
    login_form = LoginForm
    login_template = "accounts/admin_login.html"
    site_header = "Stalwart administration"
    site_title = "Stalwart"
    index_title = "Dashboard"
    index_template = "admin/dashboard.html"

    def has_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def admin_view(self, view, cacheable=False):
        """Every admin page refuses a NUL in its query string or form (400) before any query:
        PostgreSQL refuses NUL in text, so a search (?q=) or a list filter holding one was a 500
        there. No admin value may hold one anyway (Django's form fields refuse it)."""


        inner = super().admin_view(view, cacheable)

        @wraps(view)
        def guarded(request, *args, **kwargs):
            for data in (request.GET, request.POST) if request.method == "POST" else (request.GET,):
                for key, values in data.lists():
                    if "\x00" in key or any("\x00" in v for v in values):
                        raise SuspiciousOperation("NUL character in an admin request parameter")
            return inner(request, *args, **kwargs)

        return guarded

    def get_app_list(self, request, app_label=None):
        """The reference's menu tree instead of Django's apps: "Settings › Network" holds HTTP,
        "HTTP › Contact form" and Listeners, each leaf named by the rest of its section path, so
        that no two entries share a label. Each entry carries its fields' labels for the menu's
        search box."""
        apps = super().get_app_list(request, app_label)
        if app_label:
            return apps
        groups: dict[str, list] = {}
        for app in apps:
            for model in app["models"]:
                group, label = menu_place(model["model"], app["name"])
                for entry, name, fields in settings_pages(model, label):
                    entry["name"] = name
                    entry["search_terms"] = search_terms(model["model"], name, group, fields)
                    groups.setdefault(group, []).append(entry)
        for group, label, url_name, allowed in PAGES:
            if allowed(request.user):
                groups.setdefault(group, []).append({
                    "name": label, "object_name": slugify(label).replace("-", ""), "admin_url": reverse(f"admin:{url_name}"),
                    "search_terms": f"{group} | {label}".lower(), "add_url": None, "view_only": True})
        out = []
        for name in sorted(groups, key=menu_order):
            out.append({
                "name": name, "app_label": slugify(name), "app_url": reverse("admin:index", current_app=self.name),
                "has_module_perms": True, "models": sorted(groups[name], key=lambda m: str(m["name"])),
            })
        return out

    def get_urls(self):
        # Django's admin_view refuses its own logout to those without admin access (it redirects
        # them to the index, logged in still); everyone logs in here, so everyone may log out.
        return [
            path("logout/", self.logout, name="logout"),
            path("rule-check/", self.admin_view(admin_views.rule_check), name="rule-check"),
            path("delivery-test/", self.admin_view(self.delivery_test), name="delivery-test"),
            path("delivery-test/token/", self.admin_view(admin_views.delivery_test_token), name="delivery-test-token"),
            *super().get_urls(),
        ]

    def delivery_test(self, request):
        return admin_views.delivery_test(request, self)

    def index(self, request, extra_context=None):
        """The dashboard, above the menu's pages (as Django's index lists them)."""
        return super().index(request, {**dashboard.context(request.user), **(extra_context or {})})

    def password_change(self, request, extra_context=None):
        """Django's page calls the user model's set_password, which bypasses (and in our model
        refuses) the credential service; the link on every admin page leads instead to the
        self-service page, which changes the password through accounts.credentials (policy,
        current password, audit)."""

        return redirect("account-password")

    def password_change_done(self, request, extra_context=None):
        return redirect("account")

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        # Everyone logs in here; those who do not administer go to their own account page.
        user = request.user
        if request.method == "POST" and user.is_authenticated and not user.is_staff and response.status_code == 302:
            return redirect("account")
        return response

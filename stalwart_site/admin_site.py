from django import forms
from django.contrib import admin
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.urls import reverse

from registry import declaration as decl_mod


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
                if exc is not None and exc.status in (403, 429):
                    raise forms.ValidationError(str(exc), code=exc.reason)
                if otp:
                    raise forms.ValidationError(
                        "Please enter a correct login, password and one-time code.", code="invalid_login")
                raise self.get_invalid_login_error()
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class StalwartAdminSite(admin.AdminSite):
    login_form = LoginForm
    login_template = "accounts/admin_login.html"
    site_header = "Stalwart administration"
    site_title = "Stalwart"
    index_title = "Server administration"

    def has_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def admin_view(self, view, cacheable=False):
        """Every admin page refuses a NUL in its query string or form (400) before any query:
        PostgreSQL refuses NUL in text, so a search (?q=) or a list filter holding one was a 500
        there. No admin value may hold one anyway (Django's form fields refuse it)."""
        from functools import wraps

        from django.core.exceptions import SuspiciousOperation

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
        """Group pages by the reference's sections (Settings, Management) instead of by app."""
        apps = super().get_app_list(request, app_label)
        if app_label:
            return apps
        sections: dict[str, list] = {}
        for app in apps:
            for model in app["models"]:
                decl = decl_mod.for_model(model["model"])
                section = decl.section.split(" › ")[0] if decl and decl.section else app["name"]
                if decl and decl.singleton:
                    model["name"] = decl.section.split(" › ")[1] if " › " in decl.section else decl.name
                sections.setdefault(section, []).append(model)
        order = {"Settings": 0, "Management": 1}
        out = []
        for name in sorted(sections, key=lambda n: (order.get(n, 2), n)):
            models = sorted(sections[name], key=lambda m: str(m["name"]))
            out.append({
                "name": name, "app_label": name.lower(), "app_url": reverse("admin:index", current_app=self.name),
                "has_module_perms": True, "models": models,
            })
        return out

    def get_urls(self):
        from django.urls import path

        # Django's admin_view refuses its own logout to those without admin access (it redirects
        # them to the index, logged in still); everyone logs in here, so everyone may log out.
        return [path("logout/", self.logout, name="logout"), *super().get_urls()]

    def password_change(self, request, extra_context=None):
        """Django's page calls the user model's set_password, which bypasses (and in our model
        refuses) the credential service; the link on every admin page leads instead to the
        self-service page, which changes the password through accounts.credentials (policy,
        current password, audit)."""
        from django.shortcuts import redirect

        return redirect("account-password")

    def password_change_done(self, request, extra_context=None):
        from django.shortcuts import redirect

        return redirect("account")

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        # Everyone logs in here; those who do not administer go to their own account page.
        user = request.user
        if request.method == "POST" and user.is_authenticated and not user.is_staff and response.status_code == 302:
            from django.shortcuts import redirect

            return redirect("account")
        return response

from django import forms
from django.contrib import admin
from django.contrib.auth.forms import AuthenticationForm
from django.urls import reverse

from registry import declaration as decl_mod


class LoginForm(AuthenticationForm):
    """Anyone with a login may sign in; refusals say why when it helps (bans, disabled logins)."""

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError:
            exc = getattr(self.request, "auth_error", None)
            if exc is not None and exc.status in (403, 429):
                raise forms.ValidationError(str(exc), code=exc.reason) from None
            raise


class StalwartAdminSite(admin.AdminSite):
    login_form = LoginForm
    site_header = "Stalwart administration"
    site_title = "Stalwart"
    index_title = "Server administration"

    def has_permission(self, request):
        return request.user.is_active and request.user.is_staff

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

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        # Everyone logs in here; those who do not administer go to their own account page.
        user = request.user
        if request.method == "POST" and user.is_authenticated and not user.is_staff and response.status_code == 302:
            from django.shortcuts import redirect

            return redirect("account")
        return response

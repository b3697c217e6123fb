from django.contrib import admin
from django.utils.html import format_html

from registry.admin import SingletonAdmin

from . import models
from .services import current_policy


class MtaStsAdmin(SingletonAdmin):
    """The settings page, plus what to publish in DNS for the policy as it is now."""

    readonly_fields = ("published_policy",)

    def get_fieldsets(self, request, obj=None):
        return [*super().get_fieldsets(request, obj), ("Published", {"fields": ["published_policy"]})]

    @admin.display(description="Policy and its DNS record")
    def published_policy(self, obj):
        policy = current_policy()
        if policy is None:
            return "Nothing is published (the mode is Disabled, or there is no MX host name)."
        return format_html(
            "<pre>{}</pre>For each hosted domain: <code>_mta-sts.&lt;domain&gt;. TXT \"{}\"</code>, and "
            "<code>mta-sts.&lt;domain&gt;.</code> pointing at this server with a certificate for that name.",
            policy.text.replace("\r\n", "\n"), policy.txt_record())


admin.site.register(models.MtaSts, MtaStsAdmin)

"""Admin pages built from the declarations: one ModelAdmin class serves every declared object."""
from __future__ import annotations

from django.contrib import admin, messages
from django.db import models
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from . import declaration as decl_mod
from . import services
from .errors import SetError
from .models import AuditEvent


def form_values(decl, form, *, only_changed: bool) -> dict:
    """The declared fields of a valid form as service values (ids for relations)."""
    names = form.changed_data if only_changed else list(form.cleaned_data)
    values = {}
    for name in names:
        prop = decl.prop_for_field(name)
        if prop is None or prop.server_set or name not in form.cleaned_data:
            continue
        value = form.cleaned_data[name]
        if prop.is_m2m:
            value = sorted(obj.pk for obj in value)
        elif prop.is_fk:
            value = value.pk if value is not None else None
        values[name] = value
    return values


class DeclaredAdmin(admin.ModelAdmin):
    """Admin for a declared object: fieldsets, permissions and saves come from its declaration."""

    change_form_template = "admin/declared/change_form.html"
    save_on_top = False
    # No management object has a page of its own on the site: Django's "View on site" link
    # (through the content-types shortcut) would lead to an error.
    view_on_site = False

    @property
    def decl(self) -> decl_mod.ObjectType:
        return decl_mod.for_model(self.model)

    # --- layout -----------------------------------------------------------------------
    def get_fieldsets(self, request, obj=None):
        if self.fieldsets:
            return self.fieldsets
        return [(title, {"fields": names}) for title, names in self.decl.groups]

    def get_readonly_fields(self, request, obj=None):
        fields = list(self.readonly_fields) + [p.attname for p in self.decl.props if p.server_set]
        if obj is not None:
            fields += [name for name in self.decl.create_only if name not in fields]
        if obj is not None and not self.has_change_permission(request, obj):
            fields += [p.attname for p in self.decl.props]
        return fields

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.ManyToManyField):
            kwargs.setdefault("widget", admin.widgets.FilteredSelectMultiple(db_field.verbose_name, False))
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "declaration": self.decl}
        return super().changeform_view(request, object_id, form_url, extra_context)

    # --- permissions: the reference's names -------------------------------------------
    def _can(self, request, op) -> bool:
        user = request.user
        return bool(getattr(user, "has_stalwart_perm", None)) and user.has_stalwart_perm(self.decl.perm(op))

    def has_view_permission(self, request, obj=None):
        return self._can(request, "Get")

    def has_change_permission(self, request, obj=None):
        # Changing needs seeing: without Get the page would show what Update alone may not read.
        return self._can(request, "Get") and self._can(request, "Update")

    def has_add_permission(self, request):
        return not self.decl.singleton and self._can(request, "Create")

    def has_delete_permission(self, request, obj=None):
        return not self.decl.singleton and self._can(request, "Destroy")

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    # --- saving through the service layer ---------------------------------------------
    def save_model(self, request, obj, form, change):
        """Saved in save_related, together with its relations, by the service layer."""

    def save_related(self, request, form, formsets, change):
        decl = self.decl
        if change:
            services.update(decl, form.instance.pk, form_values(decl, form, only_changed=True), request.user)
        else:
            services.create(decl, form_values(decl, form, only_changed=False), request.user, instance=form.instance)
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def _changeform_view(self, request, object_id, form_url, extra_context):
        try:
            return super()._changeform_view(request, object_id, form_url, extra_context)
        except SetError as exc:
            # A refusal that only the service layer could see (a race, a linked object).
            self.message_user(request, exc.description or exc.type, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request, obj):
        services.destroy(self.decl, obj.pk, request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.destroy(self.decl, obj.pk, request.user)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for obj in objs:
            for link in services.linked_objects(obj):
                protected.append(f"{link['object']} {link['id']} refers to {obj}")
        return deleted, counts, perms_needed, protected

    # The audit log replaces Django's LogEntry (which needs a stored user).
    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None

    def log_deletion(self, request, obj, object_repr):
        return None

    def log_deletions(self, request, queryset):
        return None

    def history_view(self, request, object_id, extra_context=None):
        url = reverse("admin:registry_auditevent_changelist")
        oid = "singleton" if self.decl.singleton else object_id
        return HttpResponseRedirect(f"{url}?object_type={self.decl.name}&object_id={oid}")


class SingletonAdmin(DeclaredAdmin):
    """A settings page: the one object's edit form, with no list, add or delete."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        urls = super().get_urls()
        return [path("", self.admin_site.admin_view(self.changelist_view), name="%s_%s_changelist" % info)] + urls

    def changelist_view(self, request, extra_context=None):
        self.model.load()
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:%s_%s_change" % info, args=[self.model.SINGLETON_PK]))

    def get_object(self, request, object_id, from_field=None):
        self.model.load()
        return super().get_object(request, str(self.model.SINGLETON_PK), from_field)

    def response_change(self, request, obj):
        self.message_user(request, f"The {self.decl.name} settings were saved.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)


def admin_class_for(decl) -> type[DeclaredAdmin]:
    return SingletonAdmin if decl.singleton else DeclaredAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "action", "object_type", "object_id", "field", "old_value", "new_value")
    list_filter = ("object_type", "action")
    search_fields = ("actor", "object_type", "object_id", "field")
    date_hierarchy = "at"

    def get_list_filter(self, request):
        return self.list_filter

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in ("object_type", "object_id", "action") or super().lookup_allowed(lookup, value, request)

    def _visible_types(self, request) -> list[str]:
        user = request.user
        has = getattr(user, "has_stalwart_perm", None)
        if not has:
            return []
        names = [d.name for d in decl_mod.declarations().values() if has(d.perm("Get"))]
        if has("sysAccountGet"):
            names += ["AppPassword", "ApiKey"]
        return names

    def get_queryset(self, request):
        return super().get_queryset(request).filter(object_type__in=self._visible_types(request))

    def has_view_permission(self, request, obj=None):
        return bool(self._visible_types(request))

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def register_declared(app_label: str, site=None) -> None:
    """Give every declared model of `app_label` that has no admin of its own the generic one."""
    site = site or admin.site
    for decl in decl_mod.declarations().values():
        if decl.admin and decl.model._meta.app_label == app_label and not site.is_registered(decl.model):
            site.register(decl.model, admin_class_for(decl))

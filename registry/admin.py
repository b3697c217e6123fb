"""Admin pages built from the declarations: one ModelAdmin class serves every declared object."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.utils.text import slugify

from . import admin_widgets
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


# What JMAP answers for a stored secret; typed into a form it also means "keep the stored one".
MASK = "****"
# Suffixes of the names that stand for a secret field on a page: its read-only, masked display,
# and the box that removes the stored value.
MASKED = "__masked"
CLEAR = "__clear"


class DeclaredModelForm(forms.ModelForm):
    """A declared object's form, in which no stored secret ever reaches the page.

    A secret field (the declaration's `secret=`) is an empty input, whoever looks: its stored
    value, hashed or not, is neither the input's value nor a hidden initial. Left empty (or
    "****", as JMAP shows it), it keeps the stored value; a typed value replaces it; the
    "remove" box next to it empties it where the field may be empty.
    """

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read before validation copies the form's values onto the instance.
        self._stored = {name: getattr(self.instance, name, "") or "" for name in self.secret_fields}
        for name in self.secret_fields:
            field = self.fields.get(name)
            if field is None:
                continue
            stored = bool(self._stored[name])
            if isinstance(field.widget, forms.Textarea):
                # A multi-line secret (a PEM key) cannot be typed into a one-line input.
                field.widget = forms.Textarea(attrs={"rows": 6, "cols": 60, "autocomplete": "off",
                                                     "spellcheck": "false"})
            else:
                field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            field.required = False
            field.show_hidden_initial = False
            field.initial = ""
            self.initial[name] = ""
            state = ("A value is stored; it is never shown. Leave the field empty to keep it, or type a new "
                     "value to replace it." if stored else "No value is stored.")
            field.help_text = f"{field.help_text} {state}".strip()

    def _update_errors(self, errors):
        """A check over several fields (a minimum above its maximum) names them all in its
        params' "properties": its message shows beside each of those fields, not the first only."""
        super()._update_errors(errors)
        decl = decl_mod.for_model(self._meta.model)
        if decl is None or not hasattr(errors, "error_dict"):
            return
        for field, errs in errors.error_dict.items():
            for err in errs:
                for public in (getattr(err, "params", None) or {}).get("properties") or ():
                    name = getattr(decl.prop(public), "attname", None)
                    if name and name != field and name in self.fields and err.messages[0] not in self.errors.get(name, []):
                        self._errors.setdefault(name, self.error_class(renderer=self.renderer)).extend(err.messages)

    def _clear_requested(self, name) -> bool:
        return bool(self.cleaned_data.get(name + CLEAR)) and bool(self._stored.get(name))

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_fields:
            if name not in self.fields or name not in cleaned:
                continue
            if self.cleaned_data.get(name + CLEAR):
                cleaned[name] = ""
            elif cleaned[name] in ("", None, MASK):
                # The model's own checks see the stored value, as the service layer will.
                cleaned[name] = self._stored.get(name, "")
        return cleaned

    @cached_property
    def changed_data(self):
        names = []
        for name, bound in self._bound_items():
            if name in self.secret_fields:
                raw = bound.data
                if self._clear_requested(name) or (raw not in ("", None, MASK) and name in self.cleaned_data):
                    names.append(name)
            elif not name.endswith(CLEAR) and bound._has_changed():
                names.append(name)
        return names


class DeclaredAdmin(admin.ModelAdmin):
    """Admin for a declared object: fieldsets, permissions and saves come from its declaration."""

    change_form_template = "admin/declared/change_form.html"
    save_on_top = False
    form = DeclaredModelForm
    # No management object has a page of its own on the site: Django's "View on site" link
    # (through the content-types shortcut) would lead to an error.
    view_on_site = False

    @property
    def decl(self) -> decl_mod.ObjectType:
        return decl_mod.for_model(self.model)

    # --- layout -----------------------------------------------------------------------
    def variant(self, request, obj=None):
        """A multi-variant object's variant on this page: the object's own, or on the add page
        the one chosen first (?<variant field>=…). None for a single-variant object, or when the
        add page has not been told which variant to make yet."""
        decl = self.decl
        if not decl.multi:
            return None
        if obj is not None:
            return decl.variant_of(obj)
        chosen = request.GET.get(decl.variant_field)
        return chosen if chosen in decl.variants else None

    def declared_groups(self, request, obj=None) -> list[tuple[str, list[str]]]:
        """The declaration's groups, only the page's variant's fields for a multi-variant object."""
        return self.decl.groups_for(self.variant(request, obj)) if self.decl.multi else self.decl.groups

    def get_fieldsets(self, request, obj=None):
        if self.fieldsets:
            return self.fieldsets
        page = getattr(request, "settings_page", None)
        groups = self.decl.page_groups(page) if page else self.declared_groups(request, obj)
        return self.mask_secrets(request, obj, [(title, {"fields": list(names)}) for title, names in groups])

    def add_view(self, request, form_url="", extra_context=None):
        # A multi-variant object's add page asks for the variant first: its form has only that
        # variant's fields (the variant decides which fields exist at all).
        if self.decl.multi and self.variant(request) is None and self.has_add_permission(request):
            choices = [{"value": v, "label": self.decl.variant_label(v),
                        "url": f"?{urlencode({self.decl.variant_field: v})}"} for v in self.decl.variants]
            context = {**self.admin_site.each_context(request), "opts": self.opts, "declaration": self.decl,
                       "choices": choices, "title": f"Add {self.opts.verbose_name}",
                       "has_view_permission": self.has_view_permission(request)}
            return TemplateResponse(request, "admin/declared/choose_variant.html", context)
        return super().add_view(request, form_url, extra_context)

    def _plain_readonly(self, request, obj) -> list[str]:
        fields = list(self.readonly_fields) + [p.attname for p in self.decl.props if p.server_set]
        if obj is not None:
            fields += [name for name in self.decl.create_only if name not in fields]
        if obj is not None and not self.has_change_permission(request, obj):
            fields += [p.attname for p in self.decl.props]
        if self.decl.multi and self.decl.variant_field not in fields:
            # Chosen before the page (add) or fixed by it (change): the page's fields are that
            # variant's. A switch goes through JMAP or manage.py, which name the new fields.
            fields.append(self.decl.variant_field)
        if self.decl.multi:
            variant = self.variant(request, obj)
            fields = [f for f in fields if self.decl.in_variant(f, variant)]
        return fields

    @property
    def _secrets(self) -> dict:
        return {p.attname: p for p in self.decl.props if p.secret}

    def mask_secrets(self, request, obj, fieldsets):
        """The fieldsets with every secret either masked (where it is read-only for this viewer:
        Django would print the stored value) or paired with its "remove" box."""
        secrets = self._secrets
        if not secrets:
            return fieldsets
        readonly = set(self._plain_readonly(request, obj))
        out = []
        for title, options in fieldsets:
            names = []
            for name in options.get("fields", ()):
                if name not in secrets:
                    names.append(name)
                elif name in readonly:
                    names.append(name + MASKED)
                elif secrets[name].field.blank and obj is not None:
                    names.append((name, name + CLEAR))
                else:
                    names.append(name)
            out.append((title, {**options, "fields": names}))
        return out

    def get_readonly_fields(self, request, obj=None):
        fields = self._plain_readonly(request, obj)
        secrets = self._secrets
        return [name + MASKED if name in secrets else name for name in fields]

    def get_form(self, request, obj=None, change=False, **kwargs):
        secrets = [p for p in self._secrets.values() if not p.server_set]
        base = kwargs.pop("form", None) or self.form
        if secrets:
            attrs = {"secret_fields": tuple(p.attname for p in secrets)}
            for p in secrets:
                if p.field.blank:
                    attrs[p.attname + CLEAR] = forms.BooleanField(
                        required=False, label=f"Remove the stored {self.decl.label_of(p.attname)}")
            bases = (base,) if issubclass(base, DeclaredModelForm) else (DeclaredModelForm, base)
            base = type(base.__name__, bases, attrs)
        # Meta.labels, not the fields' own: Django's read-only display reads its label there too.
        kwargs.setdefault("labels", {p.attname: self.decl.label_of(p.attname) for p in self.decl.props})
        form = super().get_form(request, obj, change, form=base, **kwargs)
        variant = self.variant(request, obj)
        if variant is not None and obj is None:
            field = self.decl.variant_field

            class OfVariant(form):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **kwargs)
                    # Before validation: the model's checks are those of the chosen variant.
                    setattr(self.instance, field, variant)

            form = OfVariant
        refusal = getattr(request, "_service_refusal", None)
        if refusal is None:
            return form

        class Refused(form):
            def clean(self):
                data = super().clean()
                self.add_error(None, refusal.description or refusal.type)
                return data

        return Refused

    def __getattr__(self, name):
        # The read-only display of a secret: whether one is stored, never what.
        if name.endswith(MASKED):
            attname = name[: -len(MASKED)]
            prop = self._secrets.get(attname)
            if prop is not None:
                def masked(obj):
                    return MASK if getattr(obj, attname, "") else "-"

                masked.short_description = self.decl.label_of(attname)
                return masked
        raise AttributeError(name)

    # Query-string lookups on the list reach the database: on a secret (or a column that is not
    # public) a prefix filter reads the value back one character at a time. Only the declared,
    # non-secret fields may be filtered on; anything else is Django's 400 before any query runs.
    def lookup_allowed(self, lookup, value, request=None):
        first = lookup.split("__", 1)[0]
        public = {p.attname for p in self.decl.props if not p.secret}
        for item in [*(self.list_filter or ()), self.date_hierarchy]:
            if isinstance(item, (tuple, list)):
                item = item[0]
            name = item if isinstance(item, str) else getattr(item, "parameter_name", None)
            if name:
                public.add(name.split("__", 1)[0])
        public -= set(self._secrets)
        if first not in public:
            return False
        return super().lookup_allowed(lookup, value, request)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        picker = admin_widgets.name_choice_field(db_field, kwargs.get("label"))
        if picker is not None:
            return picker
        for key, value in admin_widgets.formfield_overrides(db_field).items():
            kwargs.setdefault(key, value)
        if isinstance(db_field, models.ManyToManyField):
            kwargs.setdefault("widget", admin.widgets.FilteredSelectMultiple(db_field.verbose_name, False))
        if isinstance(db_field, (models.ForeignKey, models.ManyToManyField)):
            # Another tenant's objects are neither offered nor accepted.
            kwargs.setdefault("queryset", services._reachable(db_field.related_model, request.user))
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None:
            admin_widgets.plain_help(field, db_field)
        return field

    def get_queryset(self, request):
        return services.scope(self.decl, request.user, super().get_queryset(request))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "declaration": self.decl,
                         "page_description": self.decl.page_description(getattr(request, "settings_page", None))}
        return super().changeform_view(request, object_id, form_url, extra_context)

    # --- permissions: the reference's names -------------------------------------------
    def _can(self, request, op) -> bool:
        user = request.user
        return (bool(getattr(user, "has_stalwart_perm", None)) and user.has_stalwart_perm(self.decl.perm(op))
                and services.reach_error(self.decl, user, op) is None)

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
            # A savepoint: a refusal after part of the change was written undoes all of it.
            with transaction.atomic():
                return super()._changeform_view(request, object_id, form_url, extra_context)
        except SetError as exc:
            if request.method != "POST" or getattr(request, "_service_refusal", None) is not None:
                self.message_user(request, exc.description or exc.type, messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
            # A refusal that only the service layer could see (a grant, a takeover, a race): the
            # form is shown again, as submitted, with the refusal as its error (get_form).
            request._service_refusal = exc
            return super()._changeform_view(request, object_id, form_url, extra_context)

    def response_action(self, request, queryset):
        """An action on selected ids that are not ids of this model (a crafted form: "abc", a huge
        number) is refused with a message, as an empty selection is: Django filtered on them and
        the action's query raised ValueError, a 500."""

        pk = self.model._meta.pk
        for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
            try:
                number = pk.to_python(value)
                if isinstance(number, int) and not -(2**63) <= number < 2**63:
                    raise ValidationError("out of range")
            except (ValidationError, TypeError, ValueError):
                self.message_user(request, "The selection holds an id that is not valid.", messages.ERROR)
                return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    def delete_model(self, request, obj):
        services.destroy(self.decl, obj.pk, request.user)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            services.destroy(self.decl, obj.pk, request.user)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for obj in objs:
            try:
                services.authorize_destroy(self.decl, request.user, obj)
            except SetError as exc:
                protected.append(exc.description or exc.type)
            for link in services.linked_objects(obj, actor=request.user):
                named = f"{link['object']} {link['id']}" if link["id"] else f"An object ({link['object']}) of another tenant"
                protected.append(f"{named} refers to {obj}")
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
        """The audit log of this object. Audit rows carry the JMAP id (base 32), not the database
        key that the page's URL holds."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        url = reverse("admin:registry_auditevent_changelist")
        query = urlencode({"object_type": self.decl.name, "object_id": self.decl.object_id(obj)})
        return HttpResponseRedirect(f"{url}?{query}")


def page_url_name(opts) -> str:
    return "admin:%s_%s_page" % (opts.app_label, opts.model_name)


class SingletonAdmin(DeclaredAdmin):
    """A settings page: the one object's edit form, with no list, add or delete.

    A declaration with `pages` gets one page per entry (`<model>/<page slug>/`), each a form
    over its own groups only, so saving one page leaves the other's fields alone; the plain
    change page keeps every group."""

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        urls = super().get_urls()
        pages = []
        if self.decl.pages:
            pages = [path("<slug:page>/", self.admin_site.admin_view(self.page_view), name="%s_%s_page" % info)]
        return [path("", self.admin_site.admin_view(self.changelist_view), name="%s_%s_changelist" % info),
                *pages] + urls

    def page_view(self, request, page):
        titles = {slugify(title): title for title, _groups in self.decl.pages}
        if page not in titles:
            raise Http404("No such settings page.")
        request.settings_page = titles[page]
        others = [(title, reverse(page_url_name(self.opts), args=[slugify(title)]), title == titles[page])
                  for title, _groups in self.decl.pages]
        return self.change_view(request, str(self.model.SINGLETON_PK),
                                extra_context={"settings_pages": others, "settings_page": titles[page]})

    def changelist_view(self, request, extra_context=None):
        self.model.load()
        if self.decl.pages:
            return HttpResponseRedirect(reverse(page_url_name(self.opts), args=[slugify(self.decl.pages[0][0])]))
        info = self.opts.app_label, self.opts.model_name
        return HttpResponseRedirect(reverse("admin:%s_%s_change" % info, args=[self.model.SINGLETON_PK]))

    def get_object(self, request, object_id, from_field=None):
        self.model.load()
        return super().get_object(request, str(self.model.SINGLETON_PK), from_field)

    def response_change(self, request, obj):
        page = getattr(request, "settings_page", None)
        label = f"{menu_label(self.decl)} › {page}" if page else menu_label(self.decl)
        self.message_user(request, f"The {label} settings were saved.", messages.SUCCESS)
        return HttpResponseRedirect(request.path)


def menu_label(decl) -> str:
    """The page's name as people read it in the menu ("Authentication › OpenID Connect"), not the
    object's internal name ("OidcProvider")."""
    parts = (decl.section or "").split(" › ")
    return " › ".join(parts[1:]) if len(parts) > 1 else (decl.section or str(decl.model._meta.verbose_name))


def admin_class_for(decl) -> type[DeclaredAdmin]:
    return SingletonAdmin if decl.singleton else DeclaredAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "action", "object_type", "object_ref", "field", "old_value", "new_value")
    list_filter = ("object_type", "action")
    search_fields = ("actor", "object_type", "object_id", "field")
    date_hierarchy = "at"

    # Labels with their acronyms in capitals ("Object ID"), as on the declared objects' pages;
    # the model's verbose names stay as they are (changing them would be a migration).
    @admin.display(description="Object ID", ordering="object_id")
    def object_ref(self, obj):
        return obj.object_id

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs.setdefault("labels", {f.name: decl_mod.label(f.verbose_name) for f in self.model._meta.fields})
        return super().get_form(request, obj, change, **kwargs)

    def get_list_filter(self, request):
        return self.list_filter

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in ("object_type", "object_id", "action") or super().lookup_allowed(lookup, value, request)

    def _visible_types(self, request) -> list[str]:
        user = request.user
        has = getattr(user, "has_stalwart_perm", None)
        if not has or services.actor_tenant(user) is not None:
            # Audit rows carry no tenant: a tenant's administrators would read everyone's.
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


def register_declared(site=None) -> None:
    """Give every declared model that has no admin of its own the generic one (called once the
    apps' admin modules are imported: registry.apps), so no app registers its pages by hand."""
    site = site or admin.site
    for decl in decl_mod.declarations().values():
        if decl.admin and not site.is_registered(decl.model):
            site.register(decl.model, admin_class_for(decl))

"""What every model admin of the portal shares: tenancy and write-only secrets.

A staff member who is not a superuser administers the organisations in which
they hold the administrator role or above, and the admin obeys the portal's
rules for them: every list, drop-down, filter, inline, lookup and label shows
only those organisations' rows (and the people who belong to them); nothing of
another organisation is found, named or chosen.
"""

from django import forms
from django.contrib.admin import AllValuesFieldListFilter, RelatedOnlyFieldListFilter
from django.contrib.admin.filters import RelatedFieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Role
from accounts.tenancy import people_of, scoped

from .encryption import EncryptedTextField
from .params import bounded_text


class SecretWidget(forms.PasswordInput):
    """Never renders the stored secret back into the page."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})},
                         render_value=False)


class KeepSecretFormMixin:
    """An empty secret field on an existing object keeps the stored value.

    Since the page never shows a secret, a blank field means "unchanged", not
    "erase it": nothing already stored is lost by saving another field.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_field_names():
            field = self.fields[name]
            if self.instance.pk and getattr(self.instance, name):
                field.required = False
                field.help_text = _("Stored encrypted. Leave blank to keep the current value.")

    def secret_field_names(self):
        return [
            f.name for f in self._meta.model._meta.get_fields()
            if isinstance(f, EncryptedTextField) and f.name in self.fields
        ]

    def clean(self):
        cleaned = super().clean()
        for name in self.secret_field_names():
            if not cleaned.get(name) and self.instance.pk:
                stored = type(self.instance).objects.filter(pk=self.instance.pk).values_list(
                    name, flat=True).first()
                cleaned[name] = stored or ""
                setattr(self.instance, name, cleaned[name])
        return cleaned


def visible_to(queryset, user):
    """`queryset` narrowed to what `user` administers in the admin.

    Superusers see everything. Anyone else sees the rows of the organisations
    in which they are an administrator or owner, and of people, those who are
    members of one of them. Rows of no organisation (groups, permissions) are
    left as they are.
    """
    if user.is_superuser:
        return queryset
    model = queryset.model
    if issubclass(model, get_user_model()):
        return queryset.filter(pk__in=people_of(user, at_least=Role.ADMIN).values("pk"))
    if hasattr(model, "tenant_path"):
        return scoped(queryset, user, at_least=Role.ADMIN)
    if _person_of(model):
        # A person's own rows (sign-in e-mail addresses, second factors): those
        # of the people the staff member administers.
        return queryset.filter(user__in=people_of(user, at_least=Role.ADMIN).values("pk"))
    return queryset


def _person_of(model):
    try:
        field = model._meta.get_field("user")
    except Exception:  # FieldDoesNotExist: a model of no organisation and no person
        return False
    return field.is_relation and issubclass(field.related_model, get_user_model())


class ScopedRawIdWidget(ForeignKeyRawIdWidget):
    """A raw-id input whose label names only an object the person may see.

    The stock widget looks the typed or posted id up in every row of the
    table, so ``?certificate=<id>`` on an add page would print another
    organisation's certificate next to the box.
    """

    def __init__(self, rel, admin_site, queryset, attrs=None, using=None):
        super().__init__(rel, admin_site, attrs, using)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            visible = self.queryset.filter(**{key: value}).exists()
        except (ValueError, TypeError, ValidationError):
            visible = False
        return super().label_and_url_for_value(value) if visible else ("", "")


class ScopedAllValuesFieldListFilter(AllValuesFieldListFilter):
    """The distinct values of a field across a relation, taken from the rows the
    admin shows: the stock filter reads the related table whole."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request).distinct().order_by(field_path)
            .values_list(field_path, flat=True)
        )


def scoped_list_filter(model, spec):
    """`spec` (an entry of list_filter) made to offer only visible rows.

    A relation's filter lists every row of the related table; the related-only
    filter lists those that the scoped rows point at.
    """
    if isinstance(spec, (list, tuple)):
        path, filter_class = spec
        if filter_class is RelatedFieldListFilter:
            return (path, RelatedOnlyFieldListFilter)
        return spec
    if not isinstance(spec, str):
        return spec  # a SimpleListFilter computes its own choices
    fields = get_fields_from_path(model, spec)
    last = fields[-1]
    if last.is_relation:
        return (spec, RelatedOnlyFieldListFilter)
    # Django gives a field of choices, a boolean or a date a filter of fixed
    # choices, and any other field the all-values one.
    if len(fields) > 1 and not last.flatchoices and not isinstance(
        last, (models.BooleanField, models.DateField)
    ):
        return (spec, ScopedAllValuesFieldListFilter)
    return spec


class TenantAdminMixin:
    """Staff who are not superusers see and choose only their organisations' rows.

    For model admins and inlines alike: lists and objects (get_queryset, hence
    change pages, raw-id pop-ups and the autocomplete view, which reads the
    related model admin's queryset), drop-downs and raw-id labels
    (formfield_for_*), and list filters.
    """

    # A URL typed without a scheme means https: CA directories and webhooks
    # must be https anyway (and Django 6 makes it the default).
    formfield_overrides = {EncryptedTextField: {"widget": SecretWidget},
                           models.URLField: {"assume_scheme": "https"}}

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if not issubclass(form, KeepSecretFormMixin):
            form = type(form.__name__, (KeepSecretFormMixin, form), {})
        return form

    def get_queryset(self, request):
        return visible_to(super().get_queryset(request), request.user)

    def get_search_results(self, request, queryset, search_term):
        # Bounded as the portal's own search is: SQLite refuses a very long LIKE
        # pattern and PostgreSQL a NUL, both as a 500.
        search_term = bounded_text(request, "q", search_term)
        return super().get_search_results(request, queryset, search_term)

    def _visible_choices(self, db_field, request, kwargs):
        db = kwargs.get("using")
        queryset = self.get_field_queryset(db, db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(db)
        return visible_to(queryset, request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser and "queryset" not in kwargs:
            queryset = self._visible_choices(db_field, request, kwargs)
            kwargs["queryset"] = queryset
            if "widget" not in kwargs and db_field.name in self.raw_id_fields:
                kwargs["widget"] = ScopedRawIdWidget(
                    db_field.remote_field, self.admin_site, queryset, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if not request.user.is_superuser and "queryset" not in kwargs:
            kwargs["queryset"] = self._visible_choices(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [scoped_list_filter(self.model, spec) for spec in filters]


class OnlySuperusersWriteMixin:
    """Rows that staff who are not superusers may read here but never add,
    change or delete, whatever model permissions they hold: the portal (with
    its rules and its audit log) is where they change."""

    def has_add_permission(self, request, *args):
        return request.user.is_superuser and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)

"""What every model admin of the portal shares: tenancy and write-only secrets."""

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization, Role
from accounts.tenancy import organizations_of, scoped

from .encryption import EncryptedTextField


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


class TenantAdminMixin:
    """Staff who are not superusers see and choose only their organisations' rows."""

    formfield_overrides = {EncryptedTextField: {"widget": SecretWidget}}

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if not issubclass(form, KeepSecretFormMixin):
            form = type(form.__name__, (KeepSecretFormMixin, form), {})
        return form

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return scoped(queryset, request.user, at_least=Role.ADMIN)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if not request.user.is_superuser and hasattr(related, "tenant_path"):
            if related is Organization:
                kwargs["queryset"] = organizations_of(request.user, at_least=Role.ADMIN)
            else:
                kwargs["queryset"] = scoped(related, request.user, at_least=Role.ADMIN)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

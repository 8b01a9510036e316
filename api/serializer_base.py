"""The base of the API's serializers: the organisation's scope for ids, the
allowed choices named, unknown keys refused, and the model's own clean() as the judge."""

from copy import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.serializers import as_serializer_error

from accounts.models import Role
from accounts.tenancy import organizations_of, scoped
from certificates.models.endpoints import stale_secret_errors

INVALID_CHOICE = _("“{input}” is not allowed; choose one of: %(choices)s.")

class ScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """An id among the objects of the asker's organisations: any other id is
    "does not exist", exactly as if it did not."""

    def __init__(self, model, **kwargs):
        self.model = model
        super().__init__(queryset=model._default_manager.none(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return scoped(self.model, getattr(request, "user", None))


class OrganizationField(serializers.PrimaryKeyRelatedField):
    """One of the organisations in which the asker holds the serializer's write role."""

    def __init__(self, **kwargs):
        from accounts.models import Organization

        super().__init__(queryset=Organization.objects.none(), **kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        role = getattr(self.parent, "write_role", Role.ADMIN)
        return organizations_of(getattr(request, "user", None), at_least=role)


class AllowedChoicesMixin:
    """A refused choice says which values are allowed, also in a list of choices."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            if isinstance(field, serializers.ListField) and not field.read_only:
                field = field.child
            if isinstance(field, serializers.ChoiceField) and not field.read_only:
                choices = ", ".join(str(c) for c in field.choices)
                field.error_messages["invalid_choice"] = str(INVALID_CHOICE) % {
                    "choices": choices}
        return fields


class RefuseUnknownFieldsMixin:
    """A key that is not a writable field is refused, naming it: silently
    ignored, a misspelt "chalenge" made a certificate with the default challenge.

    Every serializer that reads a request body uses it: WRITABLE_SERIALIZERS.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            for key in data:
                if key == "csrfmiddlewaretoken":  # the browsable API's HTML forms
                    continue
                field = self.fields.get(key)
                if field is None:
                    errors[key] = [serializers.ErrorDetail(_("Unknown field."),
                                                           code="unknown_field")]
                elif field.read_only:
                    errors[key] = [serializers.ErrorDetail(_("This field is read-only."),
                                                           code="read_only")]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class PortalModelSerializer(RefuseUnknownFieldsMixin, AllowedChoicesMixin,
                            serializers.ModelSerializer):
    """The model's own clean() decides what is valid, and its normalised values
    (A-labels, ordered SANs) are what is saved."""

    write_role = Role.ADMIN
    clean_exclude = ()

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.instance is None and "organization" in self.fields:
            attrs.setdefault("organization", self._only_organization())
        instance = copy(self.instance) if self.instance is not None else self.Meta.model()
        plain = {k: v for k, v in attrs.items() if k not in self.many_to_many}
        for name, value in plain.items():
            setattr(instance, name, value)
        self.prepare_instance(instance, attrs)
        try:
            instance.full_clean(exclude=list(self.clean_exclude))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(as_serializer_error(exc)) from exc
        stale = stale_secret_errors(instance, given={k for k, v in attrs.items() if v})
        if stale:
            raise serializers.ValidationError({k: [v] for k, v in stale.items()},
                                              code="secret_required")
        # Last, so that nothing reaches an outside system that the row itself refuses.
        self.check_with_peer(instance, attrs)
        kept = {*plain, *self.filled_by_clean}
        return {**attrs, **{name: getattr(instance, name) for name in kept}}

    many_to_many = ()
    # Fields the model's clean() fills in or derives from others: saved also when
    # the request leaves them out.
    filled_by_clean = ()

    def prepare_instance(self, instance, attrs):
        """Sets on `instance` what its clean() reads besides its own fields; may
        rewrite `attrs` in place."""

    def check_with_peer(self, instance, attrs):
        """Asks the outside system the row is for (a CA) whether it takes
        `instance`; raises a ValidationError naming the field at fault. What it
        learns goes on `instance`, saved when named in `filled_by_clean`."""

    def _only_organization(self):
        choices = list(self.fields["organization"].get_queryset()[:2])
        if len(choices) == 1:
            return choices[0]
        raise serializers.ValidationError({"organization": [
            _("Name the organisation (its id): you can do this in several, or in none.")]},
            code="required")

"""The DNS credential form: the fields of its kind, and for a provider the
option fields lexicon declares for it (shown once the provider is chosen)."""

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext_lazy as _

from .forms import NamesField, SecretInput
from .models import DNSCredential, DNSKind
from .models.endpoints import stale_secret_errors
from .seams import dns_providers

OPTION_PREFIX = "option_"


class DNSCredentialForm(forms.ModelForm):
    zones = NamesField(label=_("Zones"), help_text=_(
        "The zones this credential may change, one per line (e.g. example.com, or "
        "acme.example.com for a zone kept only for _acme-challenge CNAMEs)."))
    tsig_secret = forms.CharField(label=_("TSIG secret"), required=False, widget=SecretInput(),
                                  help_text=_("Base64, as tsig-keygen prints it."))
    provider = forms.ChoiceField(label=_("Provider"), required=False, help_text=_(
        "After choosing a provider, press “Show the provider's fields”."))

    class Meta:
        model = DNSCredential
        fields = ["name", "kind", "zones", "server", "port", "tsig_key_name", "tsig_algorithm",
                  "provider"]

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        self.fields["provider"].choices = [("", "—")] + [
            (name, name) for name in sorted(dns_providers.providers())]
        if self.instance.pk:
            self.fields["tsig_secret"].help_text = _("Leave blank to keep the stored secret.")
        provider = (self.data.get("provider") if self.is_bound else None) or self.instance.provider
        self.provider_options = dns_providers.providers().get(provider or "", ())
        for option in self.provider_options:
            field_name = OPTION_PREFIX + option.name
            self.fields[field_name] = forms.CharField(
                label=option.name, required=False, help_text=option.help, max_length=2000,
                widget=SecretInput() if option.secret else forms.TextInput())
            if not option.secret:
                self.initial[field_name] = self.instance.options.get(option.name, "")
            elif option.name in self.instance.secret_values:
                self.fields[field_name].help_text = _("Leave blank to keep the stored value.")

    def option_fields(self):
        return [self[OPTION_PREFIX + o.name] for o in self.provider_options]

    def _post_clean(self):
        data, instance = self.cleaned_data, self.instance
        stored = dict(instance.secret_values) if instance.pk else {}
        lexicon = data.get("kind") == DNSKind.LEXICON
        given: dict[str, str] = {}
        if data.get("kind") == DNSKind.RFC2136 and data.get("tsig_secret"):
            given["tsig_secret"] = data["tsig_secret"]
        options = {}
        for option in self.provider_options if lexicon else ():
            value = (data.get(OPTION_PREFIX + option.name) or "").strip()
            if value and option.secret:
                given[option.name] = value
            elif value:
                options[option.name] = value
        # Blank keeps a stored secret, if it still means something for the kind.
        meaningful = {o.name for o in self.provider_options} if lexicon else {"tsig_secret"}
        kept = {k: v for k, v in stored.items() if k in meaningful or k == "registrations"}
        instance.options = options
        instance.secret_values = {**kept, **given}
        super()._post_clean()
        # Kept only for the endpoint it was entered for.
        field = "tsig_secret" if instance.kind == DNSKind.RFC2136 else None
        for message in stale_secret_errors(instance, given={"secrets"} if given else set(),
                                           ).values():
            self.add_error(field, message)

    def _update_errors(self, errors):
        # The model names its own fields (options, secrets): shown above the form.
        if hasattr(errors, "error_dict"):
            remapped: dict = {}
            for field, messages in errors.error_dict.items():
                key = field if field in self.fields else NON_FIELD_ERRORS
                remapped.setdefault(key, []).extend(messages)
            errors = ValidationError(remapped)
        super()._update_errors(errors)


def kinds_help():
    return {DNSKind.RFC2136: _("Server, port and TSIG key: the zone's primary accepts "
                               "RFC 2136 updates signed with it."),
            DNSKind.LEXICON: _("A DNS provider's HTTP API through dns-lexicon: choose the "
                               "provider, then fill in its options."),
            DNSKind.ACME_DNS: _("An acme-dns server: its API's URL; each name is registered "
                                "once and needs a CNAME to the name shown.")}

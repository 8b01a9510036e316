"""Forms of the browser UI. Validation lives on the models (full_clean); these
forms shape the input and show the model's field errors next to their fields.

Secrets (TSIG secret, SSH login key) are write-only: a form never renders a
stored secret, and leaving the field blank when editing keeps it.
"""

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.db import models
from django.utils.translation import gettext_lazy as _

from .formatting import amount_step, check_minor_units
from .incidents import service as incident_service
from .models import CAAccount, Certificate, Deployment, DNSCredential, Incident, TargetHost
from .models.endpoints import stale_secret_errors
from .models.hosts import SSH_REQUIRED


class NamesField(forms.CharField):
    """Subject alternative names, one per line (commas and spaces also split)."""

    widget = forms.Textarea(attrs={"rows": 4, "spellcheck": "false",
                                   "autocapitalize": "none"})

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(value)
        return value

    def to_python(self, value):
        text = super().to_python(value) or ""
        return [name for name in text.replace(",", " ").split() if name]


class SecretInput(forms.PasswordInput):
    """Never renders the stored value; blank means 'keep'."""

    def __init__(self, attrs=None):
        super().__init__(attrs={"autocomplete": "new-password", **(attrs or {})},
                         render_value=False)


class SecretTextarea(forms.Textarea):
    """A textarea for a secret: never sent back to the browser, not even after an
    error elsewhere in the form (it must then be pasted again)."""

    def format_value(self, value):
        return None


class KeepSecretMixin:
    """For each field in `secret_fields`, blank input keeps the stored secret."""

    secret_fields: tuple[str, ...] = ()

    def _post_clean(self):
        given = {name for name in self.secret_fields if self.cleaned_data.get(name)}
        for name in self.secret_fields:
            if self.instance.pk and not self.cleaned_data.get(name):
                self.cleaned_data[name] = getattr(
                    type(self.instance).objects.only(name).get(pk=self.instance.pk), name)
        super()._post_clean()
        # Kept only for the endpoint it was entered for.
        for name, message in stale_secret_errors(self.instance, given=given).items():
            if name in self.fields:
                self.add_error(name, message)


class CertificateForm(forms.ModelForm):
    sans = NamesField(
        label=_("Subject alternative names"), required=False,
        help_text=_("One name per line. The common name is always included; "
                    "a wildcard (*.example.com) needs the DNS-01 challenge."),
    )
    hosts = forms.ModelMultipleChoiceField(
        label=_("Target hosts"), queryset=TargetHost.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The servers this certificate is deployed to."),
    )
    dns_credentials = forms.ModelMultipleChoiceField(
        label=_("DNS credentials"), queryset=DNSCredential.objects.none(), required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("DNS-01: each name's TXT record is written with the credential whose zone "
                    "holds it, or holds the end of its _acme-challenge CNAME."),
    )

    class Meta:
        model = Certificate
        fields = ["common_name", "sans", "ca_account", "key_type", "challenge",
                  "dns_credentials", "auto_renew", "key_on_host", "separate_certificate",
                  "hosts", "fallback_ca_account", "profile", "tags"]
        widgets = {"common_name": forms.TextInput(attrs={"spellcheck": "false",
                                                         "autocapitalize": "none"})}

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        accounts = CAAccount.objects.filter(organization=organization)
        self.fields["ca_account"].queryset = accounts
        self.fields["fallback_ca_account"].queryset = accounts.filter(abandoned_at__isnull=True)
        # The profiles the organisation's CAs list; the model checks the chosen CA's.
        listed = sorted({name for account in accounts for name in account.profile_names()}
                        | ({self.instance.profile} if self.instance.profile else set()))
        self.fields["profile"] = forms.ChoiceField(
            label=self.fields["profile"].label, required=False,
            help_text=self.fields["profile"].help_text,
            choices=[("", _("The CA's default"))] + [(name, name) for name in listed])
        self.fields["hosts"].queryset = TargetHost.objects.filter(organization=organization)
        self.fields["dns_credentials"].queryset = DNSCredential.objects.filter(
            organization=organization)
        if self.instance.pk:
            self.initial["hosts"] = list(self.instance.hosts.values_list("pk", flat=True))

    def clean_hosts(self):
        hosts = self.cleaned_data["hosts"]
        crowded = Deployment.crowded_hosts(self.instance.pk, hosts)
        if crowded:
            raise forms.ValidationError([Deployment.crowded_message(h) for h in crowded])
        # For the model's clean(), which runs after this: the hosts are bound only
        # once the certificate is saved.
        self.instance.chosen_hosts = list(hosts)
        return hosts

    def clean_dns_credentials(self):
        credentials = self.cleaned_data["dns_credentials"]
        self.instance.chosen_dns_credentials = list(credentials)
        return credentials

    def _save_m2m(self):
        # Hosts go through Deployment rows: add the new ones, drop the removed ones,
        # and keep the history of those that stay.
        chosen = {host.pk for host in self.cleaned_data.get("hosts") or []}
        certificate = self.instance
        certificate.dns_credentials.set(self.cleaned_data.get("dns_credentials") or [])
        certificate.deployments.exclude(host_id__in=chosen).delete()
        existing = set(certificate.deployments.values_list("host_id", flat=True))
        certificate.deployments.bulk_create(
            [certificate.deployments.model(certificate=certificate, host_id=pk)
             for pk in sorted(chosen - existing)])


class HostForm(KeepSecretMixin, forms.ModelForm):
    secret_fields = ("login_key",)

    class Meta:
        model = TargetHost
        fields = ["name", "address", "ssh_port", "ssh_user", "login_key", "private_key_path",
                  "certificate_path", "ca_bundle_path", "fullchain_path", "document_root",
                  "backup_dir", "file_owner", "file_group", "key_mode", "cert_mode",
                  "config_test_command", "reload_command", "tls_check_address",
                  "tls_check_port", "tls_sni_name", "backups_to_keep"]
        widgets = {"login_key": SecretTextarea(attrs={"rows": 4, "spellcheck": "false",
                                                      "autocomplete": "off"})}

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        for name in SSH_REQUIRED:  # blank in the model only for agent hosts
            self.fields[name].required = True
        if self.instance.pk:
            self.fields["login_key"].required = False
            self.fields["login_key"].help_text = _("Leave blank to keep the stored key.")
            self.initial["login_key"] = ""

    def validate_unique(self):
        # organization is not a form field, so ModelForm would skip this constraint.
        try:
            self.instance.validate_constraints()
        except forms.ValidationError as exc:
            self._update_errors(exc)


class AgentHostForm(forms.ModelForm):
    """A host whose agent asks the portal for work: a name, and where the portal
    may look at what it serves (optional: without it the agent's own check is
    the proof). Files and commands are in the agent's configuration, on the
    server."""

    class Meta:
        model = TargetHost
        fields = ["name", "tls_check_address", "tls_check_port", "tls_sni_name"]
        help_texts = {"tls_check_address": _(
            "Where the portal checks the served certificate after the agent installed it; "
            "blank when the portal cannot reach the server (the agent's own check counts).")}

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        self.instance.transport = TargetHost.Transport.AGENT

    def validate_unique(self):
        try:
            self.instance.validate_constraints()
        except forms.ValidationError as exc:
            self._update_errors(exc)


def https_by_default(field, **kwargs):
    # ACME directories are HTTPS; also Django 6's default, asked for now.
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return field.formfield(**kwargs)


class CAAccountForm(KeepSecretMixin, forms.ModelForm):
    secret_fields = ("eab_hmac_key",)

    class Meta:
        formfield_callback = https_by_default
        model = CAAccount
        fields = ["name", "directory_url", "contact_email", "eab_kid", "eab_hmac_key", "price",
                  "currency", "low_balance_threshold", "fallback_ca_account"]
        widgets = {"eab_hmac_key": SecretInput()}

    amount_fields = ("price", "low_balance_threshold")

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        if self.instance.pk:
            self.fields["eab_hmac_key"].help_text = _("Leave blank to keep the stored key.")
        self.fields["fallback_ca_account"].queryset = CAAccount.objects.filter(
            organization=organization, abandoned_at__isnull=True).exclude(pk=self.instance.pk)
        currency = (self.data.get("currency") if self.is_bound else None) or self.instance.currency
        for name in self.amount_fields:
            self.fields[name].widget.attrs["step"] = amount_step(currency)

    def clean(self):
        cleaned = super().clean()
        currency = cleaned.get("currency") or ""
        for name in self.amount_fields:
            try:
                check_minor_units(cleaned.get(name), currency, str(self.fields[name].label))
            except forms.ValidationError as exc:
                self.add_error(name, exc)
        return cleaned


class ConfirmHostKeyForm(forms.Form):
    # Long enough for the whole line of ssh-keygen -lf, whose comment is the host's name.
    fingerprint = forms.CharField(
        label=_("Fingerprint you compared"), max_length=500,
        help_text=_("SHA256:… or the whole line ssh-keygen -lf printed."))


class TopUpForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount"), max_digits=12, decimal_places=2, min_value=Decimal("0.01"),
        error_messages={"min_value": _("A top-up amount must be greater than zero.")},
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=500,
                           help_text=_("For example the bank transfer or invoice number."))

    def __init__(self, *args, currency, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency
        # A yen amount steps by one yen, not by 0.01 (the browser's spinner and its check).
        # The step counts from min, so min moves with it.
        self.fields["amount"].widget.attrs.update(step=amount_step(currency),
                                                  min=amount_step(currency))
        self.fields["amount"].label = _("Amount (%(currency)s)") % {"currency": currency}

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        check_minor_units(amount, self.currency, str(_("Amount")))
        return amount


class DeployForm(forms.Form):
    hosts = forms.ModelMultipleChoiceField(queryset=TargetHost.objects.none(), required=False)

    def __init__(self, *args, certificate, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hosts"].queryset = certificate.hosts.all()


class InviteForm(forms.Form):
    """Invites a person by e-mail; whether the address has an account is never told."""

    email = forms.EmailField(label=_("E-mail"), max_length=254)
    role = forms.ChoiceField(label=_("Role"))
    language = forms.ChoiceField(
        label=_("Language of the mail"), choices=settings.LANGUAGES,
        help_text=_("A person who chose a language in the portal gets the mail in theirs."))

    def __init__(self, *args, roles, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = roles


class NewAccountForm(UserCreationForm):
    """The account of an invited person: the e-mail is the invitation's."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)


class IncidentForm(forms.ModelForm):
    """What an incident replaces (the filter), by when, and whether the old
    versions are revoked once their replacements are served."""

    class Meta:
        model = Incident
        fields = ["name", "ca_account", "issuer_contains", "issued_before", "key_type",
                  "name_pattern", "tag", "deadline", "revoke_old", "revocation_reason"]
        widgets = {
            "issued_before": forms.DateTimeInput(attrs={"type": "datetime-local"},
                                                 format="%Y-%m-%dT%H:%M"),
            "deadline": forms.DateTimeInput(attrs={"type": "datetime-local"},
                                            format="%Y-%m-%dT%H:%M"),
        }

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.organization = organization
        self.fields["ca_account"].queryset = CAAccount.objects.filter(organization=organization)
        self.fields["key_type"].required = False

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("deadline"):
            try:
                incident_service.check_deadline(cleaned["deadline"])
            except forms.ValidationError as exc:
                self.add_error(None, exc)  # it names the deadline
        return cleaned

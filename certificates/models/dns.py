"""DNS credentials: what may write an organisation's DNS-01 TXT records, made
once by an administrator and chosen by many certificates (as hosts are)."""

import ipaddress
import json
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from fujissl_portal.encryption import EncryptedTextField

from .. import validators
from ..seams import dns_providers


class DNSKind(models.TextChoices):
    RFC2136 = "rfc2136", _("RFC 2136 with TSIG")
    LEXICON = "lexicon", _("DNS provider with an HTTP API (dns-lexicon)")
    ACME_DNS = "acme-dns", _("acme-dns")


def validate_dns_server(value: str) -> str:
    """An IP address or a host name: where RFC 2136 updates are sent."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if value.lower() == "localhost":
        return "localhost"
    return validators.normalize_domain_name(value, label=_("DNS server"), allow_wildcard=False)


def zone_contains(zone: str, name: str) -> bool:
    return name == zone or name.endswith("." + zone)


class DNSCredential(models.Model):
    """One way of writing TXT records in some zones: RFC 2136 with a TSIG key, a
    provider's HTTP API (through dns-lexicon), or an acme-dns server. Its
    secrets (TSIG secret, API tokens, acme-dns registrations) are one encrypted
    JSON object, never shown back."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="dns_credentials")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=DNSKind.choices,
                            default=DNSKind.RFC2136)
    # Normalised names, no trailing dot: a TXT record is written with the
    # credential whose zone is the longest that contains the name.
    zones = models.JSONField(_("zones"), default=list, blank=True,
                             help_text=_("The zones this credential may change, one per line."))
    server = models.CharField(
        _("server"), max_length=253, blank=True,
        help_text=_("RFC 2136: the authoritative server that accepts updates. acme-dns: the "
                    "URL of its API."))
    port = models.PositiveIntegerField(
        _("port"), default=53,
        validators=[MinValueValidator(1, _("Ports are whole numbers from 1 to 65535.")),
                    MaxValueValidator(65535, _("Ports are whole numbers from 1 to 65535."))])
    tsig_key_name = models.CharField(_("TSIG key name"), max_length=253, blank=True)
    tsig_algorithm = models.CharField(
        _("TSIG algorithm"), max_length=20, blank=True, default="hmac-sha256",
        choices=[(a, a) for a in validators.TSIG_ALGORITHMS])
    provider = models.CharField(_("provider"), max_length=40, blank=True)
    # The provider's options that are not secrets (a server URL, a zone id).
    options = models.JSONField(_("provider options"), default=dict, blank=True)
    secrets = EncryptedTextField(_("secret"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    tenant_path = "organization"
    # A stored secret is asked again when its endpoint changes (models/endpoints.py);
    # the kind first: it is never blank, so the check always runs.
    secret_endpoints = {"secrets": ("kind", "server", "port", "provider", "options")}

    class Meta:
        ordering = ["name"]
        verbose_name = _("DNS credential")
        verbose_name_plural = _("DNS credentials")
        constraints = [models.UniqueConstraint(fields=["organization", "name"],
                                               name="one_dns_credential_name_per_org")]

    def __str__(self):
        return self.name

    @property
    def secret_values(self) -> dict:
        try:
            loaded = json.loads(self.secrets or "{}")
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}

    @secret_values.setter
    def secret_values(self, values: dict) -> None:
        self.secrets = json.dumps(values, sort_keys=True) if values else ""

    def zone_for(self, name: str) -> str | None:
        """The longest of this credential's zones that contains ``name``."""
        matches = [zone for zone in self.zones if zone_contains(zone, name)]
        return max(matches, key=len) if matches else None

    def clean(self):
        errors = {}
        try:
            self.zones = [validators.normalize_domain_name(z, label=_("Zones"),
                                                           allow_wildcard=False)
                          for z in self.zones or []]
        except ValidationError as exc:
            errors["zones"] = exc.messages
        if not self.zones and "zones" not in errors:
            errors["zones"] = [_("Zones: give at least one zone this credential may change.")]
        check = {DNSKind.RFC2136: self._rfc2136_errors, DNSKind.LEXICON: self._lexicon_errors,
                 DNSKind.ACME_DNS: self._acme_dns_errors}.get(self.kind)
        if check:
            errors.update(check())
        if errors:
            raise ValidationError(errors)

    def _rfc2136_errors(self):
        errors = {}
        secret = self.secret_values.get("tsig_secret", "")
        # Each says what the value is for: only the secret signs the update.
        required = {
            "server": _("Server is required for RFC 2136: the update is sent to it."),
            "tsig_key_name": _("TSIG key name is required for RFC 2136: it names the key the "
                               "update is signed with."),
        }
        for field, message in required.items():
            if not getattr(self, field):
                errors[field] = [message]
        if "server" not in errors:
            try:
                self.server = validate_dns_server(self.server)
            except ValidationError as exc:
                errors["server"] = exc.messages
        try:
            self.tsig_algorithm = validators.validate_tsig_algorithm(self.tsig_algorithm)
        except ValidationError as exc:
            errors["tsig_algorithm"] = exc.messages
        if not secret:
            errors["tsig_secret"] = [_("TSIG secret is required for RFC 2136: the update is "
                                       "signed with it.")]
        else:
            try:
                self.secret_values = {"tsig_secret": validators.validate_tsig_secret(secret)}
            except ValidationError as exc:
                errors["tsig_secret"] = exc.messages
        return errors

    def _lexicon_errors(self):
        offered = dns_providers.providers()
        if self.provider not in offered:
            return {"provider": [_("Provider: choose one of the listed DNS providers.")]}
        known = {o.name: o for o in offered[self.provider]}
        errors = {}
        for name in self.options:
            if name in known and known[name].secret:
                errors["options"] = [_("Provider options: %(name)s is a secret: give it with "
                                       "the secrets, which are stored encrypted.")
                                     % {"name": name}]
        for name, value in {**self.options, **self.secret_values}.items():
            if name not in known:
                errors["options"] = [_("Provider options: %(provider)s has no option %(name)s.")
                                     % {"provider": self.provider, "name": name}]
            elif not isinstance(value, str) or len(value) > 2000:
                errors["options"] = [_("Provider options: %(name)s must be text of at most "
                                       "2000 characters.") % {"name": name}]
            elif value.startswith(("/", ".", "~", "file:")):
                # A path would make some providers talk to a socket or file on the
                # portal's own machine instead of over HTTP.
                errors["options"] = [_("Provider options: %(name)s must not be a file path.")
                                     % {"name": name}]
        return errors

    def _acme_dns_errors(self):
        parts = urlsplit(self.server or "")
        if parts.scheme not in ("https", "http") or not parts.hostname:
            return {"server": [_("Server: the acme-dns API's URL, such as "
                                 "https://auth.example.com.")]}
        return {}

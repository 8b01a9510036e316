"""Certificates as administrators manage them, and each issuance of one."""

import hashlib
import ipaddress
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from fujissl_portal.encryption import EncryptedTextField

from .. import validators


def validate_dns_server(value: str) -> str:
    """An IP address or a host name: where RFC 2136 updates are sent."""
    value = value.strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if value.lower() == "localhost":
        return "localhost"
    return validators.normalize_domain_name(
        value, label=_("DNS server"), allow_wildcard=False
    )


def normalize_tags(value: str) -> str:
    """Lower case, one space between, each once, in the order first given."""
    return " ".join(dict.fromkeys(value.lower().replace(",", " ").split()))[:200]


class KeyType(models.TextChoices):
    EC_P256 = "ec-p256", _("ECDSA P-256")
    EC_P384 = "ec-p384", _("ECDSA P-384")
    RSA_2048 = "rsa-2048", _("RSA 2048")
    RSA_3072 = "rsa-3072", _("RSA 3072")
    RSA_4096 = "rsa-4096", _("RSA 4096")


class Challenge(models.TextChoices):
    HTTP_01 = "http-01", _("HTTP-01 (a file in the host's document root)")
    DNS_01 = "dns-01", _("DNS-01 (a TXT record over RFC 2136)")


class Certificate(models.Model):
    """A certificate to keep renewed: its names, key type, challenge and hosts."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="certificates"
    )
    ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.PROTECT, related_name="certificates",
        verbose_name=_("CA account"),
    )
    common_name = models.CharField(_("common name"), max_length=253)
    # Every name on the certificate, the common name first; normalised A-labels.
    sans = models.JSONField(_("subject alternative names"), default=list, blank=True)
    key_type = models.CharField(
        _("key type"), max_length=10, choices=KeyType.choices, default=KeyType.EC_P256
    )
    challenge = models.CharField(
        _("challenge"), max_length=8, choices=Challenge.choices, default=Challenge.HTTP_01
    )
    dns_server = models.CharField(
        _("DNS server"), max_length=253, blank=True,
        help_text=_("The authoritative server that accepts RFC 2136 updates (DNS-01)."),
    )
    dns_port = models.PositiveIntegerField(
        _("DNS port"), default=53,
        validators=[
            MinValueValidator(1, _("Ports are whole numbers from 1 to 65535.")),
            MaxValueValidator(65535, _("Ports are whole numbers from 1 to 65535.")),
        ],
    )
    tsig_key_name = models.CharField(_("TSIG key name"), max_length=253, blank=True)
    tsig_algorithm = models.CharField(
        _("TSIG algorithm"), max_length=20, blank=True, default="hmac-sha256",
        choices=[(a, a) for a in validators.TSIG_ALGORITHMS],
    )
    tsig_secret = EncryptedTextField(_("TSIG secret"), blank=True)
    auto_renew = models.BooleanField(_("renew automatically"), default=True)
    # A second certificate for a common name the organisation already has is
    # usually a mistake (it would be bought and deployed twice); this says it is not.
    separate_certificate = models.BooleanField(
        _("separate certificate"), default=False,
        help_text=_("Keep this certificate even though another certificate of the "
                    "organisation has the same common name (e.g. an RSA and an ECDSA key)."),
    )
    # The private key is made on the server by its agent and never reaches the
    # portal: only a CSR does (docs/agent-protocol.md). For one agent host only.
    key_on_host = models.BooleanField(
        _("key made on the server"), default=False,
        help_text=_("The agent of the certificate's one host makes the private key and sends "
                    "only a certificate request; the portal never holds the key."),
    )
    # The CSR the agent sent for the next issuance; used up by it.
    pending_csr = models.TextField(_("certificate request from the server"), blank=True)
    renew_after = models.DateTimeField(_("renew after"), null=True, blank=True)
    # Set after a failure (backoff); kept in the database, not in Celery countdowns.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    failure_count = models.PositiveIntegerField(_("failures in a row"), default=0)
    # Waiting for a top-up: the last renewal found the deposit short.
    held_for_deposit = models.BooleanField(_("held for deposit"), default=False)
    # ACME Renewal Information (RFC 9773): when to ask the CA for its window again.
    ari_next_check_at = models.DateTimeField(_("next ARI check"), null=True, blank=True)
    current_version = models.ForeignKey(
        "certificates.CertificateVersion", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("current version"),
    )
    # Copied from the current version so that lists sort by expiry without a join.
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    hosts = models.ManyToManyField(
        "certificates.TargetHost", through="certificates.Deployment",
        related_name="certificates", blank=True, verbose_name=_("target hosts"),
    )
    # Words to group certificates by (incidents choose by them), separated by
    # spaces, lower case: "shop eu-west".
    tags = models.CharField(_("tags"), max_length=200, blank=True,
                            help_text=_("Words separated by spaces, to group certificates by "
                                        "(an incident can choose by tag)."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["expires_at", "common_name"]
        verbose_name = _("certificate")
        verbose_name_plural = _("certificates")
        indexes = [
            # The beat scan (renewal/scheduling.py): certificates whose renew_after has come...
            models.Index(
                fields=["renew_after"], condition=Q(auto_renew=True), name="cert_due_renewal_idx"
            ),
            # ...or whose backoff has run out.
            models.Index(
                fields=["next_attempt_at"], condition=Q(auto_renew=True),
                name="cert_due_retry_idx",
            ),
            # The certificate list and the dashboard timeline: by organisation, by expiry.
            models.Index(fields=["organization", "expires_at"], name="cert_org_expiry_idx"),
            models.Index(fields=["organization", "common_name"], name="cert_org_name_idx"),
        ]

    # A stored secret is asked again when its endpoint changes (models/endpoints.py).
    secret_endpoints = {"tsig_secret": ("dns_server", "dns_port")}

    def __str__(self):
        return self.common_name

    def names(self) -> list[str]:
        return self.sans or [self.common_name]

    # The hosts a form or the API is about to bind: they are Deployment rows,
    # written only after the certificate is saved, so clean() cannot read them
    # from the database. None: the hosts bound already.
    chosen_hosts = None

    def clean(self):
        self.tags = normalize_tags(self.tags)
        errors = self._name_errors()
        if self.challenge == Challenge.DNS_01:
            errors.update(self._dns01_errors())
        else:
            errors.update(self._http01_errors())
        errors.update(self._key_on_host_errors())
        if self.organization_id and self.ca_account_id:
            if self.ca_account.organization_id != self.organization_id:
                errors["ca_account"] = [_("Choose a CA account of the same organisation.")]
        if errors:
            raise ValidationError(errors)

    def _name_errors(self):
        """The common name (normalised, and not the organisation's already), the
        SANs, and whether the challenge can prove them; each checked only once
        what it depends on is valid."""
        try:
            self.common_name = validators.normalize_domain_name(
                self.common_name, label=_("Common name")
            )
        except ValidationError as exc:
            return {"common_name": exc.messages}
        errors = {}
        if duplicate := self._same_common_name():
            errors["common_name"] = [_(
                "The organisation already has a certificate for %(name)s (id %(id)s). "
                "Mark this one as a separate certificate to keep both.")
                % {"name": self.common_name, "id": duplicate.pk}]
        try:
            self.sans = validators.normalize_san_list(self.sans, common_name=self.common_name)
        except ValidationError as exc:
            errors["sans"] = exc.messages
            return errors
        try:
            validators.validate_wildcard_challenge(self.sans, self.challenge)
        except ValidationError as exc:
            errors["challenge"] = exc.messages
        return errors

    def _same_common_name(self):
        """Another certificate of the organisation with this (normalised) common name,
        unless this one is marked separate."""
        if self.separate_certificate or not self.organization_id:
            return None
        return (Certificate.objects.filter(organization_id=self.organization_id,
                                           common_name=self.common_name)
                .exclude(pk=self.pk).only("pk").order_by("pk").first())

    def _key_on_host_errors(self):
        """A key made on the server lives on one server: the certificate goes to
        exactly one host, and that host has an agent to make it."""
        if not self.key_on_host:
            return {}
        if self.chosen_hosts is not None:
            hosts = list(self.chosen_hosts)
        else:
            hosts = list(self.hosts.all()) if self.pk else []
        if len(hosts) != 1 or not hosts[0].is_agent:
            return {"key_on_host": [_(
                "A key made on the server needs exactly one target host, an agent host: the "
                "key never leaves the server its agent made it on.")]}
        return {}

    def _http01_errors(self):
        """HTTP-01 writes its files in a host's document root: at least one of the
        hosts needs one, or every issuance would fail. A certificate without hosts
        yet is let through; it has nowhere to be deployed either."""
        if self.chosen_hosts is not None:
            hosts = list(self.chosen_hosts)
        else:
            hosts = list(self.hosts.all()) if self.pk else []
        if not hosts or any(host.document_root or host.is_agent for host in hosts):
            return {}
        return {"hosts": [
            _("Target hosts: HTTP-01 writes its challenge files in a host's document root, "
              "and none of %(hosts)s has one. Choose a host with a document root, give one "
              "of these a document root, or use DNS-01.")
            % {"hosts": ", ".join(sorted(host.name for host in hosts))}]}

    def _dns01_errors(self):
        errors = {}
        # Each says what the value is for: only the secret signs the update.
        required = {
            "dns_server": _("DNS server is required for DNS-01: the RFC 2136 update is sent "
                            "to it."),
            "tsig_key_name": _("TSIG key name is required for DNS-01: it names the key the "
                               "RFC 2136 update is signed with."),
            "tsig_secret": _("TSIG secret is required for DNS-01: the RFC 2136 update is "
                             "signed with it."),
        }
        for field, message in required.items():
            if not getattr(self, field):
                errors[field] = [message]
        checks = [
            ("dns_server", validate_dns_server),
            ("tsig_secret", validators.validate_tsig_secret),
            ("tsig_algorithm", validators.validate_tsig_algorithm),
        ]
        for field, check in checks:
            if field not in errors and getattr(self, field):
                try:
                    setattr(self, field, check(getattr(self, field)))
                except ValidationError as exc:
                    errors[field] = exc.messages
        return errors

    def days_left(self, now=None) -> int | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or timezone.now())).days

    def in_renewal_window(self, now=None) -> bool:
        """Whether renewing now issues what the schedule would issue: never issued,
        no renewal time set, or the renewal time come (as
        `renewal.scheduled_intents` decides for a scheduled run; a retry of a run
        that issued before it only deploys). Outside it, a renewal issues and charges again for a
        certificate that is still good, so a person must force it."""
        if self.current_version_id is None or self.renew_after is None:
            return True
        return self.renew_after <= (now or timezone.now())

    @staticmethod
    def due(now) -> Q:
        """The one rule of "due": renewing automatically, and the next attempt after
        a failure has come, or (none pending) the renewal time has come or was never
        set. The beat scan and the dashboard's "due" state both use it."""
        return Q(auto_renew=True) & (
            Q(next_attempt_at__lte=now)
            | Q(next_attempt_at__isnull=True, renew_after__lte=now)
            | Q(next_attempt_at__isnull=True, renew_after__isnull=True)
        )


def _openssl_hex(digits: str) -> str:
    """Hex digits in uppercase, a leading zero added to make whole bytes."""
    digits = digits.upper()
    return digits.zfill(len(digits) + len(digits) % 2)


class RevocationReason(models.IntegerChoices):
    """RFC 5280 section 5.3.1 reason codes that an ACME client may send (RFC 8555
    section 7.6); Let's Encrypt accepts these five."""

    UNSPECIFIED = 0, _("Unspecified")
    KEY_COMPROMISE = 1, _("Key compromise")
    AFFILIATION_CHANGED = 3, _("Affiliation changed")
    SUPERSEDED = 4, _("Superseded")
    CESSATION_OF_OPERATION = 5, _("Cessation of operation")


class CertificateVersion(models.Model):
    """One issuance: the chain, its private key (encrypted) and what identifies it."""

    class SignedBy(models.TextChoices):
        ACCOUNT = "account", _("the CA account's key")
        CERTIFICATE = "certificate", _("the certificate's own key")

    certificate = models.ForeignKey(
        Certificate, on_delete=models.CASCADE, related_name="versions",
        verbose_name=_("certificate"),
    )
    chain_pem = models.TextField(_("certificate chain (PEM)"))
    private_key = EncryptedTextField(_("private key"))
    serial = models.CharField(_("serial number"), max_length=64)
    not_before = models.DateTimeField(_("valid from"))
    not_after = models.DateTimeField(_("valid until"))
    fingerprint_sha256 = models.CharField(_("SHA-256 fingerprint"), max_length=64, db_index=True)
    issuer = models.CharField(_("issuer"), max_length=500)
    acme_order_url = models.URLField(_("ACME order URL"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("issued"), auto_now_add=True)
    # Set once the CA accepted the revocation (renewal/revocation.py); never cleared.
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revocation_reason = models.PositiveSmallIntegerField(
        _("revocation reason"), null=True, blank=True, choices=RevocationReason.choices)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("revoked by"),
    )
    revocation_signed_by = models.CharField(_("revocation signed with"), max_length=12,
                                            blank=True, choices=SignedBy.choices)

    tenant_path = "certificate__organization"

    class Meta:
        ordering = ["-not_before", "-pk"]
        get_latest_by = "not_before"
        verbose_name = _("certificate version")
        verbose_name_plural = _("certificate versions")
        constraints = [
            models.UniqueConstraint(
                fields=["certificate", "fingerprint_sha256"], name="one_version_per_leaf"
            )
        ]

    def __str__(self):
        return f"{self.certificate} #{self.serial_hex[:16]}"

    @property
    def serial_hex(self) -> str:
        """The serial number as the CA and openssl show it: uppercase hex, an even
        number of digits. Versions stored earlier hold bare lowercase hex, which
        lost a leading zero; they are shown the same way rather than rewritten."""
        return _openssl_hex(self.serial)

    @classmethod
    def from_pem(cls, *, certificate, chain_pem, private_key_pem, acme_order_url=""):
        """A version with its identifying fields read from the leaf of `chain_pem`."""
        leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
        return cls(
            certificate=certificate,
            chain_pem=chain_pem,
            private_key=private_key_pem,
            serial=_openssl_hex(format(leaf.serial_number, "X")),
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            fingerprint_sha256=hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
            issuer=leaf.issuer.rfc4514_string()[:500],
            acme_order_url=acme_order_url,
        )

    def _pems(self) -> list[str]:
        marker = "-----END CERTIFICATE-----"
        return [part.strip() + "\n" + marker + "\n" for part in self.chain_pem.split(marker)
                if part.strip()]

    def leaf_pem(self) -> str:
        return self._pems()[0]

    def intermediates_pem(self) -> str:
        """The CA bundle: everything after the leaf."""
        return "".join(self._pems()[1:])

    def fullchain_pem(self) -> str:
        return "".join(self._pems())

    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

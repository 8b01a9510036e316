"""Certificates as administrators manage them, and each issuance of one."""

import hashlib
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from fujissl_portal.encryption import EncryptedTextField

from .. import validators
from .ca import ca_option_errors


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
    DNS_01 = "dns-01", _("DNS-01 (a TXT record written with a DNS credential)")


class CASwitch(models.TextChoices):
    """Why a certificate renews at another CA account than the one it was set up
    with (renewal/fallback.py)."""

    PRIMARY_FAILED = "primary_failed", _("The primary CA failed permanently")
    MOVED_AWAY = "moved_away", _("An administrator moved the certificates away from the CA")


class Certificate(models.Model):
    """A certificate to keep renewed: its names, key type, challenge and hosts."""

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="certificates"
    )
    ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.PROTECT, related_name="certificates",
        verbose_name=_("CA account"),
    )
    # Where renewals go when the CA account fails for good or is abandoned; the
    # CA account's own fallback applies when this is empty.
    fallback_ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("fallback CA account"),
        help_text=_("Renewals go through this CA account when the certificate's CA fails "
                    "permanently or an administrator moves certificates away from it. "
                    "Empty: the CA account's own fallback, if it has one."),
    )
    # Set when renewals moved to the fallback: the CA account it left and why.
    # `ca_account` is then the fallback, so that its price and deposit apply.
    moved_from_ca_account = models.ForeignKey(
        "certificates.CAAccount", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("moved from CA account"),
    )
    ca_switch_reason = models.CharField(_("why the CA changed"), max_length=16, blank=True,
                                        choices=CASwitch.choices)
    ca_switched_at = models.DateTimeField(_("CA changed"), null=True, blank=True)
    # An ACME profile the CA lists (draft-ietf-acme-profiles), sent with every
    # order of this certificate; empty: the CA's default.
    profile = models.CharField(
        _("ACME profile"), max_length=64, blank=True,
        help_text=_("One of the profiles the CA account's directory lists; empty for the "
                    "CA's default."),
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
    # DNS-01: each name's TXT record is written with the chosen credential whose
    # zone holds it (or holds the end of its _acme-challenge CNAME chain).
    dns_credentials = models.ManyToManyField(
        "certificates.DNSCredential", related_name="certificates", blank=True,
        verbose_name=_("DNS credentials"),
    )
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
    # Archived: kept with its versions, runs and audit trail, but no longer
    # renewed, alerted on, counted or forecast (``Certificate.active()``).
    archived_at = models.DateTimeField(_("archived"), null=True, blank=True)
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

    def __str__(self):
        return self.common_name

    def names(self) -> list[str]:
        return self.sans or [self.common_name]

    # The hosts a form or the API is about to bind: they are Deployment rows,
    # written only after the certificate is saved, so clean() cannot read them
    # from the database. None: the hosts bound already.
    chosen_hosts = None
    # Likewise the DNS credentials a form or the API is about to bind.
    chosen_dns_credentials = None

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
            errors.update(ca_option_errors(self))
        if errors:
            raise ValidationError(errors)

    def _name_errors(self):
        """The common name (normalised, and not the organisation's already), the
        SANs, and whether the challenge can prove them; each checked only once
        what it depends on is valid."""
        try:
            self.common_name = validators.normalize_certificate_name(
                self.common_name, label=_("Common name"), allow_ip_address=True
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
            self.sans = validators.normalize_san_list(self.sans, common_name=self.common_name,
                                                      allow_ip_addresses=True)
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
        """DNS-01 writes with the credentials chosen for the certificate: at least
        one, of the same organisation. Which credential writes which name is found
        at issuance, when CNAME chains are followed."""
        if self.chosen_dns_credentials is not None:
            credentials = list(self.chosen_dns_credentials)
        else:
            credentials = list(self.dns_credentials.all()) if self.pk else []
        if not credentials:
            return {"dns_credentials": [_(
                "DNS credentials: DNS-01 writes a TXT record for each name; choose the "
                "credential of the zone (or zones) that hold the names.")]}
        if any(c.organization_id != self.organization_id for c in credentials):
            return {"dns_credentials": [_("Choose DNS credentials of the same organisation.")]}
        return {}

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
    def active() -> Q:
        """Not archived: the certificates that are renewed, alerted on, counted on
        the dashboard and in the deposit forecast, and chosen by incidents."""
        return Q(archived_at__isnull=True)

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @staticmethod
    def due(now) -> Q:
        """The one rule of "due": renewing automatically, not archived, and the next
        attempt after a failure has come, or (none pending) the renewal time has
        come or was never set. The beat scan and the dashboard's "due" state both
        use it."""
        return Q(auto_renew=True, archived_at__isnull=True) & (
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

"""Target hosts (servers reached over SSH) and the certificates deployed to them."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from certificates.messages import Message
from certificates.seams.errors import FailureKind
from fujissl_portal.encryption import EncryptedTextField

from .. import validators
from .certificate import Certificate, Challenge

PORT_VALIDATORS = [
    MinValueValidator(1, _("Ports are whole numbers from 1 to 65535.")),
    MaxValueValidator(65535, _("Ports are whole numbers from 1 to 65535.")),
]
FILE_MODE_VALIDATOR = RegexValidator(
    r"^0?[0-7]{3}$", _("Enter an octal file mode such as 0600 or 0644.")
)
FILE_MODE_PATTERN = re.compile(FILE_MODE_VALIDATOR.regex.pattern)
# Fields holding a path on the host, with the label used in messages.
PATH_FIELDS = {
    "private_key_path": _("Private key path"),
    "certificate_path": _("Certificate path"),
    "ca_bundle_path": _("CA bundle path"),
    "fullchain_path": _("Full chain path"),
    "document_root": _("Document root"),
    "backup_dir": _("Backup folder"),
}


# In a file path, the certificate's common name: "/etc/nginx/ssl/{name}.key".
NAME_PLACEHOLDER = "{name}"
FILE_PATH_FIELDS = ("private_key_path", "certificate_path", "ca_bundle_path", "fullchain_path")


# What an SSH host must have; an agent host has none of it (its agent's own
# configuration names the files and commands, on the server).
SSH_REQUIRED = ("address", "ssh_user", "login_key", "private_key_path", "certificate_path",
                "backup_dir")


class Transport(models.TextChoices):
    SSH = "ssh", _("SSH (the portal logs in)")
    AGENT = "agent", _("Agent (the server asks the portal)")


class TargetHost(models.Model):
    """A server that receives certificate files: over SSH, with its pinned host
    key, or from its agent, which asks the portal for work."""

    Transport = Transport

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.CASCADE, related_name="hosts"
    )
    name = models.CharField(_("name"), max_length=200)
    transport = models.CharField(_("transport"), max_length=8, choices=Transport.choices,
                                 default=Transport.SSH)
    address = models.CharField(_("SSH address"), max_length=253, blank=True)
    ssh_port = models.PositiveIntegerField(_("SSH port"), default=22, validators=PORT_VALIDATORS)
    ssh_user = models.CharField(_("SSH user"), max_length=64, blank=True)
    login_key = EncryptedTextField(
        _("SSH login key"), blank=True,
        help_text=_("An OpenSSH private key without a passphrase."),
    )
    # Pinned at enrolment, after an administrator confirms the fingerprint; a
    # host whose key is not confirmed receives nothing.
    host_key = models.TextField(_("SSH host key"), blank=True)
    host_key_fingerprint = models.CharField(_("host key fingerprint"), max_length=80, blank=True)
    host_key_confirmed_at = models.DateTimeField(_("host key confirmed"), null=True, blank=True)
    host_key_confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("host key confirmed by"),
    )
    private_key_path = models.CharField(_("private key path"), max_length=4096, blank=True)
    certificate_path = models.CharField(_("certificate path"), max_length=4096, blank=True)
    ca_bundle_path = models.CharField(_("CA bundle path"), max_length=4096, blank=True)
    fullchain_path = models.CharField(_("full chain path"), max_length=4096, blank=True)
    document_root = models.CharField(
        _("document root"), max_length=4096, blank=True,
        help_text=_("Where HTTP-01 challenge files are written."),
    )
    backup_dir = models.CharField(_("backup folder"), max_length=4096, blank=True)
    file_owner = models.CharField(_("file owner"), max_length=64, blank=True)
    file_group = models.CharField(_("file group"), max_length=64, blank=True)
    key_mode = models.CharField(
        _("private key mode"), max_length=4, default="0600", validators=[FILE_MODE_VALIDATOR]
    )
    cert_mode = models.CharField(
        _("certificate mode"), max_length=4, default="0644", validators=[FILE_MODE_VALIDATOR]
    )
    config_test_command = models.CharField(
        _("config test command"), max_length=1000, default="nginx -t"
    )
    reload_command = models.CharField(
        _("reload command"), max_length=1000, default="systemctl reload nginx"
    )
    tls_check_address = models.CharField(
        _("TLS check address"), max_length=253, blank=True,
        help_text=_("Where the served certificate is checked; blank means the SSH address."),
    )
    tls_check_port = models.PositiveIntegerField(
        _("TLS check port"), default=443, validators=PORT_VALIDATORS
    )
    tls_sni_name = models.CharField(
        _("TLS SNI name"), max_length=253, blank=True,
        help_text=_("Blank means the certificate's common name."),
    )
    backups_to_keep = models.PositiveSmallIntegerField(
        _("backups to keep"), default=5,
        validators=[MinValueValidator(1, _("Keep at least one backup."))],
    )
    # A lease, taken with a guarded UPDATE: one deployment at a time per host, so
    # that two certificates on one nginx never reload over each other. A lease
    # rather than a held lock, so that a dead worker's claim simply runs out.
    deploy_lock_owner = models.CharField(_("deployment lock owner"), max_length=64, blank=True)
    deploy_locked_until = models.DateTimeField(_("deployment locked until"), null=True,
                                               blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    tenant_path = "organization"

    class Meta:
        ordering = ["name"]
        verbose_name = _("target host")
        verbose_name_plural = _("target hosts")
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="host_name_unique_in_org")
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        # The fingerprint is derived, so it can never disagree with the pinned key.
        self.host_key_fingerprint = (
            validators.ssh_fingerprint_sha256(self.host_key) if self.host_key else ""
        )
        super().save(*args, **kwargs)

    def file_paths(self, certificate) -> dict[str, str]:
        """The four file paths for `certificate`, `{name}` replaced by its common
        name (a wildcard's `*` as `wildcard`), so one host can carry several
        certificates, each in files of its own."""
        name = certificate.common_name.replace("*", "wildcard")
        return {field: getattr(self, field).replace(NAME_PLACEHOLDER, name)
                for field in FILE_PATH_FIELDS}

    def has_per_certificate_paths(self) -> bool:
        return all(NAME_PLACEHOLDER in getattr(self, field)
                   for field in FILE_PATH_FIELDS if getattr(self, field))

    @property
    def host_key_confirmed(self) -> bool:
        return bool(self.host_key and self.host_key_confirmed_at)

    @property
    def is_agent(self) -> bool:
        return self.transport == Transport.AGENT

    @staticmethod
    def proves_http01() -> models.Q:
        """Hosts through which an HTTP-01 challenge file can be placed: an SSH
        host with a document root, or an agent host (its configuration has the
        document root of each certificate)."""
        return models.Q(transport=Transport.AGENT) | ~models.Q(document_root="")

    def clean(self):
        errors = {**self._ssh_errors(), **self._path_errors()}
        if self.login_key:
            try:
                validators.validate_ssh_private_key(self.login_key, label=_("SSH login key"))
            except ValidationError as exc:
                errors["login_key"] = exc.messages
        if self.host_key:
            try:
                validators.validate_ssh_public_key(self.host_key, label=_("SSH host key"))
            except ValidationError as exc:
                errors["host_key"] = exc.messages
        if FILE_MODE_PATTERN.match(self.key_mode or "") and int(self.key_mode, 8) & 0o077:
            errors.setdefault("key_mode", []).append(_(
                "The private key mode %(mode)s lets the group or others use the key; allow "
                "its owner only, such as 0600 or 0400.") % {"mode": self.key_mode})
        for field, message in {**self._shared_path_errors(),
                               **self._http01_errors()}.items():
            errors.setdefault(field, []).append(message)
        if errors:
            raise ValidationError(errors)

    def _ssh_errors(self) -> dict:
        if self.is_agent:
            return {}
        return {field: [_("An SSH host needs this; an agent host does not.")]
                for field in SSH_REQUIRED if not getattr(self, field)}

    def _http01_errors(self) -> dict:
        """A document root taken away from the last host of an HTTP-01 certificate
        that had one: its next renewal could prove nothing, a day later."""
        if not self.pk or self.document_root or self.is_agent:
            return {}
        left_without = list(Certificate.objects.filter(
            challenge=Challenge.HTTP_01, deployments__host_id=self.pk,
        ).exclude(deployments__host__in=TargetHost.objects.exclude(pk=self.pk).filter(
            TargetHost.proves_http01())).order_by("common_name").values_list("common_name",
                                                                             flat=True))
        if not left_without:
            return {}
        return {"document_root": ngettext(
            "%(names)s proves its names over HTTP-01 through this host's document root "
            "alone: keep it, give another of its hosts one, or move it to DNS-01.",
            "%(names)s prove their names over HTTP-01 through this host's document root "
            "alone: keep it, give another of their hosts one, or move them to DNS-01.",
            len(left_without)) % {"names": ", ".join(left_without)}}

    def _path_errors(self) -> dict:
        """Each path absolute and normalised (in place), with no braces but {name}."""
        errors = {}
        for field, label in PATH_FIELDS.items():
            value = getattr(self, field)
            if not value:
                continue
            try:
                setattr(self, field, validators.validate_absolute_path(value, label=label))
            except ValidationError as exc:
                errors[field] = exc.messages
                continue
            others = value.replace(NAME_PLACEHOLDER, "")
            if "{" in others or "}" in others:
                errors[field] = [_("%(field)s may contain {name} (the certificate's common "
                                   "name) and no other braces.") % {"field": label}]
        return errors

    def _shared_path_errors(self) -> dict:
        """A path without {name} on a host that several certificates go to: each
        deployment would overwrite the files (the key!) of the others."""
        if not self.pk or self.has_per_certificate_paths():
            return {}
        count = Deployment.objects.filter(host_id=self.pk).count()
        if count < 2:
            return {}
        message = _("%(count)d certificates are deployed to this host, so each of its file "
                    "paths needs {name} (for example /etc/nginx/ssl/{name}.key): otherwise they "
                    "would overwrite each other's files.") % {"count": count}
        return {field: message for field in FILE_PATH_FIELDS
                if getattr(self, field) and NAME_PLACEHOLDER not in getattr(self, field)}


class Deployment(models.Model):
    """A certificate bound to a host, and whether the host really serves it."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Not deployed yet")
        DEPLOYED = "deployed", _("Deployed")
        FAILED = "failed", _("Failed")
        ROLLED_BACK = "rolled_back", _("Rolled back")

    certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.CASCADE, related_name="deployments"
    )
    host = models.ForeignKey(TargetHost, on_delete=models.CASCADE, related_name="deployments")
    last_version = models.ForeignKey(
        "certificates.CertificateVersion", on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("last deployed version"),
    )
    last_status = models.CharField(
        _("last status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    # The last error as text (in English where it has a key) and as a message of
    # the catalogue, rendered when read (certificates.messages); rows from
    # before keys have the text only.
    last_error = models.TextField(_("last error"), blank=True)
    last_error_key = models.CharField(_("last error's message key"), max_length=80, blank=True)
    last_error_params = models.JSONField(_("last error's parameters"), default=dict, blank=True)
    # None until the first TLS check; then whether the served leaf is ours.
    served = models.BooleanField(_("served"), null=True, blank=True)
    served_fingerprint = models.CharField(_("served fingerprint"), max_length=64, blank=True)
    last_deployed_at = models.DateTimeField(_("last deployed"), null=True, blank=True)
    last_checked_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    # Who saw the new leaf served: the portal's own TLS check, or, on an agent
    # host the portal cannot reach, the agent's check on the server.
    served_checked_by = models.CharField(_("served, as checked by"), max_length=8, blank=True,
                                         choices=[("portal", _("the portal")),
                                                  ("agent", _("the agent on the server"))])

    tenant_path = "certificate__organization"

    class Meta:
        verbose_name = _("deployment")
        verbose_name_plural = _("deployments")
        constraints = [
            models.UniqueConstraint(fields=["certificate", "host"], name="one_deployment_per_host")
        ]

    def __str__(self):
        return f"{self.certificate} → {self.host}"

    @property
    def last_error_message(self) -> Message:
        return Message(self.last_error_key, self.last_error_params or {}, self.last_error)

    def clean(self):
        if not (self.certificate_id and self.host_id):
            return
        if self.certificate.organization_id != self.host.organization_id:
            raise ValidationError({"host": _("Choose a host of the certificate's organisation.")})
        if self.crowded_hosts(self.certificate_id, [self.host]):
            raise ValidationError({"host": self.crowded_message(self.host)})

    @classmethod
    def crowded_hosts(cls, certificate_id, hosts) -> list:
        """Those of ``hosts``, not yet bound to ``certificate_id`` (None: a new
        one), that already receive another certificate and have a file path
        without {name}: binding it there would overwrite the other one's files.
        Call it wherever bindings change. A binding that already exists is left
        to the host's own check (TargetHost.clean), so that an unrelated edit of
        the certificate still goes through."""
        fixed = [host for host in hosts if not host.has_per_certificate_paths()]
        if not fixed:
            return []
        bound = cls.objects.filter(host__in=fixed)
        mine = set(bound.filter(certificate_id=certificate_id).values_list("host_id", flat=True))
        taken = set(bound.exclude(certificate_id=certificate_id).values_list("host_id",
                                                                              flat=True))
        return [host for host in fixed if host.pk in taken and host.pk not in mine]

    @staticmethod
    def crowded_message(host) -> str:
        return _("%(host)s already receives another certificate: put {name} in each of its "
                 "file paths (for example /etc/nginx/ssl/{name}.key) so that every certificate "
                 "gets files of its own.") % {"host": host}


class DeployRequest(models.Model):
    """A version waiting to be installed on a host, and, once tried, how it went.

    Deployments to one host go one at a time, so certificates renewed together
    queue up behind each other. Each run leaves a request here per host; whoever
    takes the host's lease installs every queued request in one session, with
    one config test and one reload, and writes each outcome on its row, where
    the run's conclusion reads it back.
    """

    host = models.ForeignKey(TargetHost, on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey("certificates.CertificateVersion", on_delete=models.CASCADE,
                                related_name="+")
    # The run the request belongs to, whose steps the installation is recorded
    # on; it is concluded once its last request is answered (renewal.conclude).
    run = models.ForeignKey("certificates.RenewalRun", on_delete=models.SET_NULL, null=True,
                            blank=True, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The outcome, as deployment.Outcome carries it.
    status = models.CharField(max_length=12, choices=Deployment.Status.choices, blank=True)
    error = models.TextField(blank=True)
    error_key = models.CharField(max_length=80, blank=True)
    error_params = models.JSONField(default=dict, blank=True)
    error_kind = models.CharField(max_length=40, blank=True, choices=FailureKind.choices)
    transient = models.BooleanField(default=False)
    served_fingerprint = models.CharField(max_length=64, blank=True)

    tenant_path = "host__organization"

    class Meta:
        verbose_name = _("deployment request")
        verbose_name_plural = _("deployment requests")
        indexes = [
            models.Index(fields=["host", "requested_at"], name="deploy_request_waiting_idx",
                         condition=models.Q(finished_at__isnull=True)),
        ]

    def __str__(self):
        return f"{self.deployment} ({self.requested_at:%Y-%m-%d %H:%M:%S})"

    @property
    def error_message(self) -> Message:
        return Message(self.error_key, self.error_params or {}, self.error)

"""The portal's one error base class, and the kinds of failure it names.

Every seam (the CA, SSH, DNS, the TLS check, the outbound policy) and every
service raises a ``PortalError``, sorted into transient (retrying later can
help: the network, a busy CA) or permanent (a person must act: a changed host
key, a refused order). Code that reacts to an error reads its attributes, which
every error has, and its ``kind``, never its class name: a kind is stored on rows
(``DeployRequest.error_kind``) and outlives any renaming of a class.

No models and no other module of the portal here: the seams and
``fujissl_portal.egress``, below everything else, import it.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _


class FailureKind(models.TextChoices):
    """What went wrong, for code that reacts to it and for people who read it.

    The values are stored: they are the class names the first errors had, and
    stay as they are even where a class is renamed."""

    # Anything.
    UNEXPECTED = "Unexpected", _("Unexpected error")
    TIME_LIMIT = "TimeLimit", _("Time limit reached")
    OUTBOUND_REFUSED = "OutboundRefused", _("Address not allowed by the outbound policy")
    RESPONSE_TOO_LARGE = "ResponseTooLarge", _("Answer too large")
    # Issuance.
    DEPOSIT = "Deposit", _("Deposit too low")
    CA_ERROR = "CAError", _("CA error")
    DNS_ERROR = "DNSError", _("DNS update failed")
    ISSUANCE_FAILED = "IssuanceFailed", _("Issuance failed")
    # Reaching a host.
    SSH_ERROR = "SSHError", _("SSH error")
    HOST_KEY_NOT_CONFIRMED = "HostKeyNotConfirmed", _("Host key not confirmed")
    HOST_KEY_MISMATCH = "HostKeyMismatch", _("Host key changed")
    UNREACHABLE = "Unreachable", _("Host unreachable")
    AUTHENTICATION_FAILED = "AuthenticationFailed", _("SSH login refused")
    # Work on a host.
    COMMAND_FAILED = "CommandFailed", _("Command failed")
    COMMAND_TIMED_OUT = "CommandTimedOut", _("Command timed out")
    REMOTE_FILE_ERROR = "RemoteFileError", _("File operation refused")
    UNSAFE_PATH = "UnsafePath", _("Unsafe path on the host")
    UNSAFE_BACKUP_FOLDER = "UnsafeBackupFolder", _("Unsafe backup folder")
    INSTALL_FAILED = "InstallFailed", _("Installation failed")
    TLS_CHECK_FAILED = "TLSCheckError", _("No TLS handshake")
    NOT_SERVED = "NotServed", _("New certificate not served")
    ROLLBACK_FAILED = "RollbackFailed", _("Rollback failed")
    AGENT_SILENT = "AgentSilent", _("Agent did not check in")
    AGENT_NOT_CONFIGURED = "AgentNotConfigured", _("Not in the agent's configuration")
    AGENT_REPORT = "AgentReport", _("Failed on the agent's host")
    # Deployment as a whole: not an issuance failure.
    NOTHING_TO_DEPLOY = "NothingToDeploy", _("Nothing to deploy")
    HOST_BUSY = "HostBusy", _("Host busy")
    SUPERSEDED = "Superseded", _("Superseded by a newer version")
    DEPLOYMENT_FAILED = "DeploymentFailed", _("Deployment failed")


class PortalError(Exception):
    """Something went wrong that the portal knows how to sort.

    ``message`` is for people (``str()`` gives it too), in the current language.
    Given a message of the catalogue (certificates.messages.message(...)) or
    another error that carries one, the error carries its ``key`` and ``params``
    too, which is what is stored, so that it is read in the reader's language
    (certificates.messages); given text, ``key`` is empty. ``transient``: retrying
    later can help; otherwise a person must act first. ``retry_after``: not
    before this time (a CA's Retry-After), or None. ``problem``: the CA's
    RFC 7807 problem document, or None. ``kind``: a FailureKind.

    ``transient`` and ``kind`` default to the class's own, so that a subclass
    states once what its errors usually are; an instance may say otherwise.
    """

    transient: bool = False
    kind: FailureKind = FailureKind.UNEXPECTED

    def __init__(self, message: object = "", *, transient: bool | None = None,
                 retry_after: datetime.datetime | None = None,
                 problem: dict[str, Any] | None = None,
                 kind: FailureKind | None = None) -> None:
        # Read by attribute, not by type: this module imports nothing of the portal.
        self.key: str = getattr(message, "key", "") or ""
        self.params: dict[str, Any] = dict(getattr(message, "params", None) or {}
                                           ) if self.key else {}
        # str(): a lazy translation is rendered now, for logs and old callers.
        self.message = str(message)
        super().__init__(self.message)
        if transient is not None:
            self.transient = transient
        if kind is not None:
            self.kind = kind
        self.retry_after = retry_after
        self.problem = problem

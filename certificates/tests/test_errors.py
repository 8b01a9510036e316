"""One error hierarchy: every seam's and service's error says whether retrying can
help, when to retry, the CA's problem and what kind of failure it is."""

import datetime

import pytest
from django.utils import translation

from certificates.hosts import installer
from certificates.seams import acme, dns, ssh, tls
from certificates.seams.errors import FailureKind, PortalError
from fujissl_portal import egress

# Each error class, the kind it carries, and whether it is transient unless told.
CLASSES = [
    (ssh.SSHError, "SSHError", False),
    (ssh.HostKeyNotConfirmed, "HostKeyNotConfirmed", False),
    (ssh.HostKeyMismatch, "HostKeyMismatch", False),
    (ssh.Unreachable, "Unreachable", True),
    (ssh.AuthenticationFailed, "AuthenticationFailed", False),
    (ssh.CommandFailed, "CommandFailed", False),
    (ssh.CommandTimedOut, "CommandTimedOut", True),
    (ssh.RemoteFileError, "RemoteFileError", False),
    (ssh.UnsafePath, "UnsafePath", False),
    (ssh.OutboundRefused, "OutboundRefused", False),
    (tls.TLSCheckError, "TLSCheckError", True),
    (installer.InstallFailed, "InstallFailed", False),
    (acme.AcmeError, "CAError", None),
    (dns.DNSUpdateError, "DNSError", None),
    (egress.Refused, "OutboundRefused", False),
    (egress.ResponseTooLarge, "ResponseTooLarge", False),
]


@pytest.mark.parametrize("cls,kind,transient", CLASSES)
def test_every_error_is_a_portal_error_with_its_kind(cls, kind, transient):
    assert issubclass(cls, PortalError)
    assert cls.kind == kind and cls.kind in FailureKind.values
    if transient is not None:  # the CA's and DNS errors are sorted one by one
        assert cls.transient is transient


def test_every_attribute_is_there_whatever_the_error():
    error = ssh.Unreachable("host down")
    assert (error.message, str(error), error.transient, error.retry_after, error.problem,
            error.kind) == ("host down", "host down", True, None, None, "Unreachable")


def test_an_instance_may_say_otherwise_than_its_class():
    error = tls.TLSCheckError("refused", transient=False, kind=FailureKind.OUTBOUND_REFUSED)
    assert (error.transient, error.kind) == (False, "OutboundRefused")
    assert tls.TLSCheckError("again").transient is True  # the class is untouched


def test_the_cas_errors_carry_its_problem_and_when_to_come_back():
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    problem = {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "slow down"}
    error = acme.AcmeError("busy", transient=True, problem=problem, retry_after=when)
    assert (error.problem, error.retry_after, error.kind) == (problem, when, "CAError")


def test_the_kinds_rows_hold_keep_their_values():
    stored = {"HostKeyMismatch", "HostKeyNotConfirmed", "Unreachable", "AuthenticationFailed",
              "CommandFailed", "CommandTimedOut", "RemoteFileError", "UnsafePath",
              "OutboundRefused", "NotServed", "RollbackFailed", "HostBusy", "Superseded",
              "UnsafeBackupFolder", "InstallFailed", "TLSCheckError", "SSHError"}
    assert stored <= set(FailureKind.values)


def test_a_kind_reads_in_the_readers_language():
    with translation.override("ja"):
        assert str(FailureKind.ROLLBACK_FAILED.label) == "ロールバックの失敗"
    with translation.override("en"):
        assert str(FailureKind.ROLLBACK_FAILED.label) == "Rollback failed"


def test_the_key_seam_generates_every_key_type_a_certificate_may_have():
    from certificates.models import KeyType
    from certificates.seams import keys

    assert keys.KEY_TYPES == set(KeyType.values)

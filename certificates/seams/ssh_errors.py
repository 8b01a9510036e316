"""The SSH seam's errors, each sorted into transient or permanent, and the
wording of what a host or the network said."""

from __future__ import annotations

from certificates.seams.errors import FailureKind, PortalError


class SSHError(PortalError):
    """Anything that went wrong on the way to or on a host; ``str()`` is for people."""

    kind = FailureKind.SSH_ERROR


class HostKeyNotConfirmed(SSHError):
    kind = FailureKind.HOST_KEY_NOT_CONFIRMED


class HostKeyMismatch(SSHError):
    kind = FailureKind.HOST_KEY_MISMATCH

    def __init__(self, message: object, *, pinned: str, presented: str) -> None:
        super().__init__(message)
        self.pinned, self.presented = pinned, presented


class Unreachable(SSHError):
    transient = True
    kind = FailureKind.UNREACHABLE


class AuthenticationFailed(SSHError):
    kind = FailureKind.AUTHENTICATION_FAILED


class CommandFailed(SSHError):
    kind = FailureKind.COMMAND_FAILED

    def __init__(self, message: object, *, exit_status: int, output: str) -> None:
        super().__init__(message)
        self.exit_status, self.output = exit_status, output


class CommandTimedOut(SSHError):
    transient = True
    kind = FailureKind.COMMAND_TIMED_OUT


class RemoteFileError(SSHError):
    """An SFTP operation the server refused (permission, missing folder...)."""

    kind = FailureKind.REMOTE_FILE_ERROR


class UnsafePath(RemoteFileError):
    """A path the portal refuses to write through: a symbolic link it did not
    make, or a folder that others may write to. A person must look at the host."""

    kind = FailureKind.UNSAFE_PATH


class OutboundRefused(SSHError):
    """The address is not one the portal's outbound policy allows: a person must
    change it (or the operator the policy); retrying changes nothing."""

    kind = FailureKind.OUTBOUND_REFUSED


# Enough of a command's output to show a person what went wrong (nginx -t
# prints its verdict last), without storing a runaway log in a step's detail.
OUTPUT_LIMIT = 4000


def trim(text: str) -> str:
    text = text.strip()
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


def describe(exc: BaseException) -> str:
    # paramiko raises some exceptions (EOFError, timeouts) without a message.
    return str(exc) or type(exc).__name__


"""Exit codes (docs/agent-protocol.md) and the errors that end a command."""

from __future__ import annotations

OK = 0
FAILURE = 1  # a failure here, or a portal that cannot be reached
ENROLMENT_REFUSED = 2
CREDENTIAL_REFUSED = 3  # revoked or unknown: enrol again


class AgentError(Exception):
    """Ends the command with a one-line message for a person and an exit code."""

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

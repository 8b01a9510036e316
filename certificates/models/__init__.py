"""The portal's nouns, one module per group (see DESIGN.md, 'Words')."""

from .agents import AgentChallenge, AgentCredential, AgentEnrolment, AgentState
from .audit import AuditEvent
from .ca import CAAccount, DepositEntry, Reservation
from .certificate import Certificate, CertificateVersion, Challenge, KeyType, RevocationReason
from .hosts import Deployment, DeployRequest, TargetHost
from .incidents import Incident, IncidentCertificate
from .orders import Order
from .runs import Heartbeat, Notification, RenewalRun, RenewalStep

__all__ = [
    "AgentChallenge",
    "AgentCredential",
    "AgentEnrolment",
    "AgentState",
    "AuditEvent",
    "CAAccount",
    "Certificate",
    "CertificateVersion",
    "Challenge",
    "Deployment",
    "DeployRequest",
    "DepositEntry",
    "Heartbeat",
    "Incident",
    "IncidentCertificate",
    "KeyType",
    "Notification",
    "Order",
    "RenewalRun",
    "RenewalStep",
    "Reservation",
    "RevocationReason",
    "TargetHost",
]

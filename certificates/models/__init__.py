"""The portal's nouns, one module per group (see DESIGN.md, 'Words')."""

from .agents import AgentChallenge, AgentCredential, AgentEnrolment, AgentState
from .audit import AuditEvent
from .ca import CAAccount, DepositEntry, Reservation
from .certificate import Certificate, CertificateVersion, Challenge, KeyType
from .hosts import Deployment, DeployRequest, TargetHost
from .inventory import EndpointCheck, InventoryCertificate, MonitoredEndpoint, Source
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
    "EndpointCheck",
    "Heartbeat",
    "InventoryCertificate",
    "KeyType",
    "MonitoredEndpoint",
    "Notification",
    "Order",
    "RenewalRun",
    "RenewalStep",
    "Reservation",
    "Source",
    "TargetHost",
]

"""The portal's nouns, one module per group (see DESIGN.md, 'Words')."""

from .agents import AgentChallenge, AgentCredential, AgentEnrolment, AgentState
from .audit import AuditEvent
from .ca import CAAccount, DepositEntry, Reservation
from .certificate import (
    CASwitch,
    Certificate,
    CertificateVersion,
    Challenge,
    KeyType,
    RevocationReason,
)
from .channels import NotificationChannel
from .discovery import Discovery
from .dns import DNSCredential, DNSKind
from .hosts import Deployment, DeployRequest, TargetHost
from .incidents import Incident, IncidentCertificate
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
    "CASwitch",
    "Challenge",
    "Deployment",
    "Discovery",
    "DNSCredential",
    "DNSKind",
    "DeployRequest",
    "DepositEntry",
    "EndpointCheck",
    "Heartbeat",
    "Incident",
    "IncidentCertificate",
    "InventoryCertificate",
    "KeyType",
    "MonitoredEndpoint",
    "Notification",
    "NotificationChannel",
    "Order",
    "RenewalRun",
    "RenewalStep",
    "Reservation",
    "RevocationReason",
    "Source",
    "TargetHost",
]

"""The periodic checks that need a person: deposit warnings, reminders for
failing renewals as expiry nears, certificates expiring with no successful
renewal, and agents gone silent (the `certificates.checks` task, every 15
minutes)."""

import datetime

from django.conf import settings
from django.utils import timezone

from certificates import alerts
from certificates.hosts import agents
from certificates.inventory import expiry
from certificates.models import (
    CAAccount,
    Certificate,
    Notification,
    RenewalRun,
)
from certificates.renewal import deposit
from certificates.signals import announce

# Reminders for a failing renewal, nearest first: the smallest one crossed is sent.
REMINDER_DAYS = (3, 14)


def periodic_checks(*, now: datetime.datetime | None = None) -> None:
    """Deposit warnings, reminders for failing renewals as expiry nears, and
    certificates expiring with no successful renewal. Notifications de-duplicate,
    so running this often sends nothing twice."""
    now = now or timezone.now()
    _silent_agents(now)
    expiry.expiring_unmanaged(now=now)
    for ca_account in CAAccount.objects.filter(price__gt=0):
        outlook = deposit.forecast(ca_account, now=now)
        if outlook.is_low(ca_account.low_balance_threshold):
            extra = {"balance": outlook.balance, "threshold": ca_account.low_balance_threshold,
                     "needed_30d": outlook.needed_30d, "runs_out_on": outlook.runs_out_on}
            told = alerts.notify(Notification.Kind.DEPOSIT_LOW, ca_account=ca_account,
                                 extra=extra)
            if told:  # once a day, like the mail, not at every check
                announce("deposit.low", organization=ca_account.organization, payload={
                    "ca_account": ca_account.pk, "name": ca_account.name,
                    "currency": ca_account.currency, **extra})
    expiring = Certificate.objects.filter(
        expires_at__lte=now + datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS),
        expires_at__gt=now, renew_after__lte=now,
    ).select_related("current_version", "ca_account")
    for certificate in expiring:
        days = certificate.days_left(now)
        if days is None:  # never: the query asks for an expiry date
            continue
        if certificate.failure_count:
            last_run = certificate.runs.filter(status=RenewalRun.Status.FAILED).first()
            for threshold in REMINDER_DAYS:
                if days < threshold:
                    alerts.notify(Notification.Kind.RENEWAL_FAILED, certificate=certificate,
                                  run=last_run, once=True,
                                  event=f"{threshold}d:version-{certificate.current_version_id}")
                    break
        alerts.notify(Notification.Kind.EXPIRING, certificate=certificate,
                      event=f"version-{certificate.current_version_id}", extra={"days": days})


def _silent_agents(now: datetime.datetime) -> None:
    """An agent that missed AGENT_SILENT_INTERVALS check-ins: told once per
    silence (its next check-in ends it), by mail and webhook."""
    for state in agents.silent_agents(now=now):
        if state.last_seen is None or not agents.mark_silence_told(state, now=now):
            continue  # another check told it
        host = state.host
        alerts.notify(Notification.Kind.AGENT_SILENT, host=host, once=True,
                      event=f"silent:{state.last_seen:%Y%m%dT%H%M%S}",
                      extra={"last_seen": state.last_seen, "interval": state.interval})
        announce("agent.silent", organization=host.organization, payload={
            "host": host.pk, "name": host.name,
            "last_seen": state.last_seen.isoformat(), "interval": state.interval})

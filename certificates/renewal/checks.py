"""The periodic checks that need a person: deposit warnings, reminders for
failing renewals as expiry nears, certificates expiring with no successful
renewal, and agents gone silent (the `certificates.checks` task, every 15
minutes); runs open past their time and expired certificates still served
(`certificates.watch`, every minute). Reminders, warnings and "past their
time" scale with the lifetime (renewal/policy.py)."""

import datetime

from django.conf import settings
from django.utils import timezone

from certificates import alerts
from certificates.hosts import agents
from certificates.inventory import expiry
from certificates.models import (
    CAAccount,
    Certificate,
    Deployment,
    Notification,
    RenewalRun,
)
from certificates.renewal import deposit, policy
from certificates.signals import announce


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
        Certificate.active(),
        expires_at__lte=now + datetime.timedelta(days=settings.EXPIRY_WARNING_DAYS),
        expires_at__gt=now, renew_after__lte=now,
    ).select_related("current_version", "ca_account")
    for certificate in expiring:
        days = certificate.days_left(now)
        if days is None or certificate.expires_at is None:  # never: the query asks for one
            continue
        left = certificate.expires_at - now
        version = certificate.current_version
        lifetime = version.lifetime() if version is not None else None
        if certificate.failure_count:
            last_run = certificate.runs.filter(status=RenewalRun.Status.FAILED).first()
            # 14 and 3 days, or a fraction of a short lifetime: never with the first failure.
            for threshold, before in policy.reminder_thresholds(lifetime):
                if left < before:
                    alerts.notify(Notification.Kind.RENEWAL_FAILED, certificate=certificate,
                                  run=last_run, once=True,
                                  event=f"{threshold}d:version-{certificate.current_version_id}")
                    break
        if left < policy.expiry_warning(lifetime):
            alerts.notify(Notification.Kind.EXPIRING, certificate=certificate,
                          event=f"version-{certificate.current_version_id}",
                          extra={"days": days})


def watch_runs_and_expiry(*, now: datetime.datetime | None = None) -> None:
    """Runs open longer than their certificate's lifetime allows (whatever holds
    them: a lost worker, a host queue, a CA that does not answer), and
    certificates that hosts still serve after they expired. Each is told once
    a day while it lasts."""
    now = now or timezone.now()
    _alert_stuck_runs(now)
    _alert_expired_and_served(now)


def _alert_stuck_runs(now: datetime.datetime) -> None:
    runs = RenewalRun.objects.filter(status__in=RenewalRun.OPEN).select_related(
        "certificate__current_version", "certificate__ca_account",
        "certificate__organization")
    for run in runs:
        version = run.certificate.current_version
        lifetime = version.lifetime() if version is not None else None
        if run.created_at < now - policy.stuck_after(lifetime):
            alerts.notify(Notification.Kind.RUN_STUCK, certificate=run.certificate, run=run,
                          event=f"run-{run.pk}", extra={"since": run.created_at})


def _alert_expired_and_served(now: datetime.datetime) -> None:
    # The version a host last received has expired, and no TLS check said the
    # host serves something else.
    expired = Deployment.objects.filter(last_version__not_after__lte=now,
                                        certificate__archived_at__isnull=True).exclude(
        served=False).select_related("certificate__ca_account", "certificate__organization",
                                     "host", "last_version").order_by("certificate_id", "pk")
    by_certificate: dict[int, list[Deployment]] = {}
    for deployed in expired:
        by_certificate.setdefault(deployed.certificate_id, []).append(deployed)
    for deployments in by_certificate.values():
        certificate = deployments[0].certificate
        version = deployments[0].last_version
        run = certificate.runs.filter(status__in=RenewalRun.OPEN).first()
        alerts.notify(Notification.Kind.EXPIRED, certificate=certificate, run=run,
                      event=f"version-{version.pk}" if version else "",
                      extra={"hosts": ", ".join(d.host.name for d in deployments),
                             "expired_at": version.not_after if version else None})


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

"""System checks for settings that must agree with one another.

Each number below is safe only in relation to another; set from the
environment one at a time, they could drift apart silently. `manage.py check`,
`migrate` and `make run` (runserver) stop with a message naming the settings
instead.

- A run's lease is renewed every third of it by the worker holding it
  (certificates/renewal/lifecycle.py), so it must leave time for a renewal to be
  written: at least LEASE_MINIMUM seconds.
- The broker redelivers an unacknowledged task after its visibility timeout:
  it must outlast the tasks' hard time limits, or a second worker starts a run
  whose first worker still holds it; and it must outlast the wait of a queued
  run, which is enqueued again after RENEWAL_QUEUE_SECONDS.
- A host's deployment lease must not outlast the deployment task that holds it,
  or a killed task's host stays locked past the point where its run is drained
  again.
- Near expiry a failing renewal is retried every RENEWAL_RETRY_MIN_SECONDS
  (certificates/renewal/policy.py): at least RETRY_MINIMUM, or a renewal that
  fails at once would be retried at every scan and spend the CA's patience.
"""

from django.conf import settings
from django.core.checks import Error, register

# Below this a lease renewed every third of it could run out between two renewals.
LEASE_MINIMUM = 30
RETRY_MINIMUM = 1


@register("portal")
def timings_agree(app_configs, **kwargs):
    from certificates import tasks  # noqa: PLC0415 - apps are ready here
    from certificates.hosts import leases  # noqa: PLC0415 - apps are ready here

    errors = []
    lease = settings.RENEWAL_LEASE_SECONDS
    if lease < LEASE_MINIMUM:
        errors.append(Error(
            f"RENEWAL_LEASE_SECONDS ({lease}) must be at least {LEASE_MINIMUM} seconds.",
            hint="A worker renews its run's lease every third of it; a shorter one can run "
                 "out under a slow database, and the run would be taken up twice.",
            id="portal.E001"))
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    longest = max(tasks.ACME_LIMITS["time_limit"], tasks.DEPLOY_LIMITS["time_limit"],
                  tasks.DISCOVERY_LIMITS["time_limit"], settings.RENEWAL_QUEUE_SECONDS)
    if visibility is not None and visibility <= longest:
        errors.append(Error(
            f"The broker's visibility timeout ({visibility} s) must be longer than the "
            f"tasks' hard time limits and RENEWAL_QUEUE_SECONDS (the longest is {longest} s).",
            hint="Redis hands a task that is not acknowledged by then to a second worker.",
            id="portal.E002"))
    host_lease = leases.host_lease_seconds()
    if host_lease > tasks.DEPLOY_LIMITS["time_limit"]:
        errors.append(Error(
            f"A host's deployment lease (SSH_CONNECT_TIMEOUT + 6 x SSH_COMMAND_TIMEOUT + "
            f"DEPLOY_TLS_GRACE_SECONDS = {host_lease:g} s) must not outlast the deployment "
            f"task's hard time limit ({tasks.DEPLOY_LIMITS['time_limit']} s).",
            hint="Lower SSH_COMMAND_TIMEOUT or DEPLOY_TLS_GRACE_SECONDS.",
            id="portal.E003"))
    retry = settings.RENEWAL_RETRY_MIN_SECONDS
    if retry < RETRY_MINIMUM:
        errors.append(Error(
            f"RENEWAL_RETRY_MIN_SECONDS ({retry}) must be at least {RETRY_MINIMUM} second.",
            hint="It is how often a failing renewal is retried near or past expiry.",
            id="portal.E004"))
    return errors

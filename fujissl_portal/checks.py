"""System checks for settings that must agree with one another.

Each number below is safe only in relation to another; set from the
environment one at a time, they could drift apart silently. `manage.py check`,
`migrate` and `make run` (runserver) stop with a message naming the settings
instead.

- A run's task ends (its hard time limit) before its lease can run out, so a
  live worker's run is never taken up by a second one.
- The broker redelivers an unacknowledged task after its visibility timeout:
  it must outlast the lease, or a second worker starts a run the first still
  holds.
- A host's deployment lease must not outlast the deployment task that holds it,
  or a killed task's host stays locked past the point where its run is retried.
"""

from django.conf import settings
from django.core.checks import Error, register


@register("portal")
def timings_agree(app_configs, **kwargs):
    from certificates import deployment, tasks  # noqa: PLC0415 - apps are ready here

    errors = []
    lease = settings.RENEWAL_LEASE_SECONDS
    for what, limits in (("renewal", tasks.ACME_LIMITS), ("deployment", tasks.DEPLOY_LIMITS)):
        if limits["time_limit"] >= lease:
            errors.append(Error(
                f"RENEWAL_LEASE_SECONDS ({lease}) must be longer than the {what} task's hard "
                f"time limit ({limits['time_limit']} s).",
                hint="A run whose lease ends while its task still runs is taken up twice.",
                id="portal.E001"))
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
    if visibility is not None and visibility <= lease:
        errors.append(Error(
            f"The broker's visibility timeout ({visibility} s) must be longer than "
            f"RENEWAL_LEASE_SECONDS ({lease}).",
            hint="Redis hands a task that is not acknowledged by then to a second worker.",
            id="portal.E002"))
    host_lease = deployment.host_lease_seconds()
    if host_lease > tasks.DEPLOY_LIMITS["time_limit"]:
        errors.append(Error(
            f"A host's deployment lease (SSH_CONNECT_TIMEOUT + 6 x SSH_COMMAND_TIMEOUT + "
            f"DEPLOY_TLS_GRACE_SECONDS = {host_lease:g} s) must not outlast the deployment "
            f"task's hard time limit ({tasks.DEPLOY_LIMITS['time_limit']} s).",
            hint="Lower SSH_COMMAND_TIMEOUT or DEPLOY_TLS_GRACE_SECONDS.",
            id="portal.E003"))
    return errors

"""When this process of the portal started, for what must wait until the rest
of the portal has had time to start too.

Set when the module is first imported, which the app's ``ready()`` does at
start-up: the time of the web server's (or worker's) start, not of a first request.
"""

import datetime

from django.conf import settings
from django.utils import timezone

STARTED_AT = timezone.now()


def in_startup_grace(now: datetime.datetime | None = None) -> bool:
    """Whether SCHEDULER_STARTUP_GRACE_SECONDS have not yet passed since start-up:
    a worker started at the same time may not have reported yet."""
    grace = datetime.timedelta(seconds=settings.SCHEDULER_STARTUP_GRACE_SECONDS)
    return (now or timezone.now()) < STARTED_AT + grace

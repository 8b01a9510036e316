"""Alerts sent to an organisation's notification channels through apprise
(Slack, Microsoft Teams, LINE, ntfy, PagerDuty, Opsgenie, a JSON webhook...).

A channel takes the alert kinds it names, in the language its readers read:
the alert is rendered for each channel when it happens (from the same
templates as the mail's subject and text) and sent by a task, so that a slow
or failing channel holds up neither a renewal nor the mail. apprise makes its
own HTTP requests; they go through the portal's egress policy like every
other outbound connection (egress.every_requests_session).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from certificates import tasks
from certificates.models import NotificationChannel
from fujissl_portal import egress

logger = logging.getLogger(__name__)

# What apprise may read back from a channel's server (an error page, at most).
MAX_ANSWER_BYTES = 256 * 1024


class ChannelError(Exception):
    pass


def _apprise():
    import apprise  # heavy (every plugin): only where a channel is used

    return apprise


def describe(url: str) -> str:
    """The URL as apprise shows it with its secrets masked; raises ChannelError
    when apprise does not understand it."""
    plugin = _apprise().Apprise.instantiate(url.strip())
    if plugin is None:
        raise ChannelError(_("apprise does not understand this URL: check its scheme "
                             "(slack://, msteams://, ntfys://, json://...) and its parts."))
    return str(plugin.url(privacy=True))[:300]


def send(url: str, title: str, body: str) -> None:
    """One message to one channel; raises ChannelError with apprise's reason."""
    apprise = _apprise()
    # One notification at a time, in this thread: the egress policy holds in the
    # thread that sends (egress.every_requests_session), not in apprise's pool.
    sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    if not sender.add(url.strip()):
        raise ChannelError(_("apprise does not understand this URL."))
    with apprise.LogCapture(level=apprise.logging.WARNING) as logs, \
            egress.every_requests_session(egress.Adapter(max_body=MAX_ANSWER_BYTES)):
        ok = sender.notify(title=title, body=body)
        said = logs.getvalue().strip()
    if not ok:
        raise ChannelError(said.splitlines()[-1] if said else _("The channel refused the "
                                                                "message."))


def deliver(channel_id: int, title: str, body: str) -> bool:
    """Sends an alert to a channel and records how it went (the task's body)."""
    channel = NotificationChannel.objects.filter(pk=channel_id, enabled=True).first()
    if channel is None:
        return False
    try:
        send(channel.url, title, body)
    except (ChannelError, egress.Refused) as exc:
        NotificationChannel.objects.filter(pk=channel.pk).update(last_error=str(exc)[:2000])
        logger.warning("channel %s: %s", channel.pk, exc)
        return False
    NotificationChannel.objects.filter(pk=channel.pk).update(last_sent_at=timezone.now(),
                                                             last_error="")
    return True


def fan_out(kind: str, organization: Any, render: Any) -> int:
    """Hands the alert to each enabled channel of the organisation that takes
    ``kind``: ``render(language)`` gives (title, body) in the channel's
    language. Sent after the current transaction commits."""
    channels = list(NotificationChannel.objects.filter(
        organization=organization, enabled=True).only("pk", "kinds", "language"))
    count = 0
    for channel in channels:
        if kind not in (channel.kinds or []):
            continue
        try:
            title, body = render(channel.language)
        except Exception:  # a template bug must not cost the other channels their alert
            logger.exception("alert %s could not be rendered for channel %s", kind, channel.pk)
            continue
        transaction.on_commit(
            lambda pk=channel.pk, t=title, b=body: tasks.deliver_to_channel.delay(pk, t, b))
        count += 1
    return count


def test(channel: NotificationChannel, *, by: Any = None) -> tuple[bool, str]:
    """A test message to the channel, now, in its language; (sent, why not)."""
    from django.utils import translation

    with translation.override(channel.language):
        title = _("Test message from the certificate portal")
        body = _("%(who)s sent this test from the notification channel “%(name)s” of "
                 "%(organization)s. Alerts of the kinds chosen for it will arrive here.") % {
            "who": getattr(by, "username", "") or _("Someone"), "name": channel.name,
            "organization": channel.organization.name}
    try:
        send(channel.url, title, body)
    except (ChannelError, egress.Refused) as exc:
        NotificationChannel.objects.filter(pk=channel.pk).update(last_error=str(exc)[:2000])
        return False, str(exc)
    NotificationChannel.objects.filter(pk=channel.pk).update(last_sent_at=timezone.now(),
                                                             last_error="")
    return True, ""

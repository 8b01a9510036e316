"""Dates, times and amounts in templates, in the style of certificates.formatting:
every page and mail loads this library instead of Django's `date` filter and
its locale formats, so that one language shows one style.

    {{ run.created_at|when }}          1 Dec 2026, 15:04 / 2026年12月1日 15:04
    {{ version.not_after|day }}        1 Dec 2026 / 2026年12月1日
    {{ step.at|clock }}                15:04:05
    {{ certificate.expires_at|when_zone }}   ... JST, for mails
    {{ run.created_at|ago }}           <time datetime=... title=exact>2 min ago</time>
    {{ run.created_at|exact }}         <time datetime=... title=exact>exact</time>
    {{ account.price|money:account.currency }}   ¥1,100 / 1,100円
    {{ step.detail|instants }}         the ISO 8601 instants in a stored text, as above
    {{ run.error_message|said }}       a stored message in the reader's language
    {{ run.log|run_log }}              a deployment log with its statuses in words
"""

import re

from django import template
from django.utils.translation import gettext as _

from certificates import formatting
from certificates.inventory import verification
from certificates.models import Deployment

register = template.Library()


@register.filter
def when(value):
    return formatting.format_datetime(value)


@register.filter
def when_zone(value):
    return formatting.format_datetime(value, zone=True)


@register.filter
def day(value):
    return formatting.format_date(value)


@register.filter
def clock(value):
    return formatting.format_time(value)


@register.filter
def ago(value):
    return formatting.time_tag(value)


@register.filter
def exact(value):
    return formatting.time_tag(value, relative=False)


@register.filter
def instants(value):
    return formatting.localize_instants(value)


@register.filter
def said(value):
    """A stored message (certificates.messages.Message) in the current language;
    the text of a row from before keys with its instants as above."""
    return formatting.localize_instants(str(value or ""))


@register.filter
def money(value, currency):
    return formatting.format_amount(value, currency)


# certificates.hosts.outcomes writes one line per host: "<host>: <status>[: <error>]",
# with the status's code, not its words (the worker's language is not the reader's).
_LOG_LINE = re.compile(r"^(?P<host>.+?): (?P<status>[a-z_]+)(?P<rest>: .*)?$")


@register.filter
def run_log(value):
    labels = dict(Deployment.Status.choices)
    lines = []
    for line in (value or "").splitlines():
        match = _LOG_LINE.match(line)
        if match and match["status"] in labels:
            line = _("%(host)s: %(status)s") % {
                "host": match["host"], "status": labels[match["status"]]} + (match["rest"] or "")
        lines.append(line)
    return "\n".join(lines)


@register.filter
def problem_text(value):
    """A problem of a monitored endpoint (a message key with parameters), in the
    reader's language."""
    return verification.describe(value)

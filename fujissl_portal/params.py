"""Query-string values read strictly: an id is ASCII digits within a database
integer, a text is bounded. Anything else counts as absent, so that a hand-made
or truncated link shows the unfiltered page instead of an error.

`str.isdigit()` also accepts "²" and `int()` also accepts "١٢"; a search text of
50,000 characters made SQLite refuse its LIKE pattern ("too complex").
"""

import re

from django.contrib import messages
from django.utils.translation import gettext as _

ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
BIGINT_MAX = 2**63 - 1
SEARCH_MAX_LENGTH = 200


def strict_int(value, *, minimum=1, maximum=BIGINT_MAX):
    """The integer `value` spells in ASCII digits, within [minimum, maximum]; else None."""
    if not isinstance(value, str) or not ASCII_DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def int_param(request, name, **bounds):
    return strict_int(request.GET.get(name), **bounds)


def text_param(request, name, max_length=SEARCH_MAX_LENGTH):
    """The stripped text of `name`; too long or holding a control character (a
    NUL is refused by PostgreSQL), it is ignored and the person told why."""
    return bounded_text(request, name, request.GET.get(name, "").strip(), max_length)


def bounded_text(request, name, text, max_length=SEARCH_MAX_LENGTH):
    """`text` if it is short enough and has no control character; else "" and
    the person is told that the filter `name` was ignored."""
    if len(text) > max_length or any(ord(c) < 32 or ord(c) == 127 for c in text):
        messages.warning(request, _(
            "The filter “%(name)s” was ignored: it allows at most %(max)d characters "
            "and no control characters.") % {"name": name, "max": max_length})
        return ""
    return text

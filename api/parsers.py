"""JSON bodies with a bounded nesting depth.

Python's decoder and the serializers that walk a body recurse once per level:
a body of 7 KB nested 1,000 levels deep raised RecursionError, a 500 on every
write endpoint. No request of this API nests more than a few levels.
"""

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def depth_exceeds(data, limit):
    """Whether lists and objects in `data` nest deeper than `limit`, without recursion."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


class TooDeep(ParseError):
    default_code = "too_deep"


class BoundedJSONParser(JSONParser):
    max_depth = MAX_DEPTH

    def parse(self, stream, media_type=None, parser_context=None):
        message = _("The JSON body nests deeper than %(max)d levels.") % {"max": self.max_depth}
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise TooDeep(message) from None
        if depth_exceeds(data, self.max_depth):
            raise TooDeep(message)
        return data

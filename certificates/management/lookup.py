"""Finding the object a shell user names: by id, or by a name that must be unambiguous."""

from django.core.management.base import CommandError
from django.utils.translation import gettext as _


def by_id_or_name(queryset, value: str, *, name_field: str, kind: str):
    """The one object of ``queryset`` whose id is ``value`` or whose name it is."""
    if value.isdigit():
        found = list(queryset.filter(pk=int(value)))
    else:
        found = list(queryset.filter(**{f"{name_field}__iexact": value}))
    if len(found) == 1:
        return found[0]
    if not found:
        raise CommandError(_("No %(kind)s “%(value)s”.") % {"kind": kind, "value": value})
    ids = ", ".join(str(obj.pk) for obj in found)
    raise CommandError(
        _("“%(value)s” is ambiguous: the %(kind)s ids %(ids)s (in different organisations) "
          "all have that name; give the id.") % {"kind": kind, "value": value, "ids": ids}
    )

"""The audit log of the current organisation: administrators and owners only,
filtered by action, person, dates and subject, and exported as CSV."""

import csv

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Role
from accounts.tenancy import scoped

from ..auditing import describe
from ..models import AuditEvent
from .common import paginate, portal_view, query_without_page, require, roles


class AuditFilters(forms.Form):
    action = forms.ChoiceField(label=gettext_lazy("Action"), required=False)
    person = forms.ModelChoiceField(label=gettext_lazy("Person"), required=False,
                                    queryset=get_user_model().objects.none(),
                                    empty_label=gettext_lazy("Anyone"))
    since = forms.DateField(label=gettext_lazy("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}),
                            help_text=gettext_lazy("YYYY-MM-DD"))
    until = forms.DateField(label=gettext_lazy("Until"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}),
                            help_text=gettext_lazy("YYYY-MM-DD, included"))
    q = forms.CharField(label=gettext_lazy("Subject contains"), required=False, max_length=100)

    def __init__(self, *args, people, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", _("Any"))] + list(AuditEvent.Action.choices)
        self.fields["person"].queryset = people
        self.fields["person"].label_from_instance = lambda user: user.get_username()

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", _("The end date must not be before the start date."))
        return data


def _filtered(events, data):
    # Dates are days in the organisation's time zone, active for this request.
    if data.get("action"):
        events = events.filter(action=data["action"])
    if data.get("person"):
        events = events.filter(user=data["person"])
    if data.get("since"):
        events = events.filter(created_at__date__gte=data["since"])
    if data.get("until"):
        events = events.filter(created_at__date__lte=data["until"])
    if data.get("q"):
        events = events.filter(Q(subject__icontains=data["q"]))
    return events


def _cell(value) -> str:
    # A spreadsheet runs a cell that starts like a formula; host names and
    # subjects are typed by people, so such a cell is kept as text.
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


def _csv(events):
    writer = csv.writer(_Echo())
    yield writer.writerow([_("When"), _("Who"), _("Action"), _("Subject"), _("Details"),
                           _("IP address")])
    for event in events.iterator(chunk_size=500):
        yield writer.writerow([_cell(v) for v in (
            timezone.localtime(event.created_at).isoformat(timespec="seconds"),
            event.user.get_username() if event.user else "",
            event.get_action_display(), event.subject, describe(event),
            event.ip_address or "")])


@portal_view
def audit_log(request):
    require(request, Role.ADMIN)
    events = scoped(AuditEvent, request.user, at_least=Role.ADMIN).filter(
        organization=request.organization)
    people = get_user_model().objects.filter(
        pk__in=events.exclude(user=None).values("user")).order_by("username")
    form = AuditFilters(request.GET or None, people=people)
    valid = form.is_valid() if form.is_bound else True
    if valid:
        events = _filtered(events, form.cleaned_data if form.is_bound else {})
    events = events.select_related("user")
    if valid and request.GET.get("format") == "csv":
        # Rendered while the response streams: the language and time zone must stay.
        language, zone = request.LANGUAGE_CODE, timezone.get_current_timezone()

        def rows():
            from django.utils import translation  # noqa: PLC0415

            with translation.override(language), timezone.override(zone):
                yield "\ufeff"  # spreadsheets read UTF-8 (Japanese) only with a BOM
                yield from _csv(events)

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        stamp = timezone.localdate().isoformat()
        response["Content-Disposition"] = (
            f'attachment; filename="audit-{request.organization.slug}-{stamp}.csv"')
        return response
    page = paginate(request, events)
    for event in page:
        event.details = describe(event)
    return render(request, "certificates/audit_list.html", {
        "page": page, "form": form, "query": query_without_page(request),
        "csv_query": _with_csv(request), **roles(request)},
        status=200 if valid else 400)


def _with_csv(request):
    params = request.GET.copy()
    params.pop("page", None)
    params["format"] = "csv"
    return params.urlencode()

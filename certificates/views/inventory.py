"""The inventory: every certificate of the organisation, managed here or
elsewhere; the import form; the page of one unmanaged certificate; the CSV
export."""

import csv
import datetime

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import get_scoped_or_404
from fujissl_portal.params import int_param, text_param

from ..forms import CertificateForm
from ..inventory import adoption, importing, listing
from ..inventory.parsing import MAX_FILE_BYTES, ImportRefused
from ..models import AuditEvent, InventoryCertificate, MonitoredEndpoint, Source
from .certificates import EXPIRING_CHOICES, EXPIRING_MAX_DAYS
from .common import PAGE_SIZE, enter, portal_view, query_without_page, require, roles

MAX_FILES = 200


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class FilesField(forms.FileField):
    """Several files in one field (Django's documented recipe)."""

    widget = MultipleFileInput

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class ImportForm(forms.Form):
    files = FilesField(
        label=gettext_lazy("Files"), required=False,
        help_text=gettext_lazy("PEM files (certificate, chain, private key) or PKCS#12 files "
                               "(.p12, .pfx); several at once."))
    pem = forms.CharField(
        label=gettext_lazy("Or paste PEM"), required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=gettext_lazy("A certificate with its chain, and its private key if you "
                               "have it."))
    password = forms.CharField(
        label=gettext_lazy("Password"), required=False, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=gettext_lazy("For a PKCS#12 file or an encrypted private key."))

    def contents(self) -> list[tuple[str, bytes]]:
        files = self.cleaned_data["files"]
        if len(files) > MAX_FILES:
            raise ImportRefused(_("At most %(count)d files at once.") % {"count": MAX_FILES})
        contents = []
        for upload in files:
            if upload.size > MAX_FILE_BYTES:
                raise ImportRefused(_("%(file)s is larger than 1 MB: it is not a certificate "
                                      "file.") % {"file": upload.name})
            contents.append((upload.name, upload.read()))
        if self.cleaned_data["pem"].strip():
            contents.append((_("pasted text"), self.cleaned_data["pem"].encode()))
        return contents


def _filters(request) -> dict:
    return {key: request.GET.get(key, "") for key in ("q", "source", "issuer", "expiring",
                                                      "endpoint")}


@portal_view
def inventory_list(request):
    now = timezone.now()
    days = int_param(request, "expiring", maximum=EXPIRING_MAX_DAYS)
    sort = request.GET.get("sort", "expires")
    rows = listing.unified(
        request.organization, source=request.GET.get("source", ""),
        search=text_param(request, "q"), issuer=text_param(request, "issuer"),
        expires_by=now + datetime.timedelta(days=days) if days else None,
        endpoint_result=request.GET.get("endpoint", ""), sort=sort)
    return render(request, "certificates/inventory_list.html", {
        # A UNION cannot be filtered by key, as KeysFirstPaginator would: each side
        # is narrow (no annotation but the issuer), so a plain slice is cheap.
        "page": Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page")),
        "query": query_without_page(request),
        "filters": _filters(request),
        "sources": Source,
        "endpoint_results": MonitoredEndpoint.Result,
        "sort": sort,
        "expiring_choices": EXPIRING_CHOICES,
        "now": now,
        **roles(request),
    })


@portal_view
def inventory_import(request):
    require(request, Role.OPERATOR)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = importing.import_files(request.organization, form.contents(),
                                            password=form.cleaned_data["password"],
                                            by=request.user)
        except ImportRefused as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            _tell(request, result)
            return redirect("certificates:inventory")
    return render(request, "certificates/inventory_import.html", {"form": form,
                                                                  **roles(request)})


def _tell(request, result: importing.Imported) -> None:
    AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATES_IMPORTED,
                      subject=", ".join(str(row) for row in result.rows[:5]),
                      params={"created": len(result.created), "updated": len(result.updated),
                              "managed": len(result.managed)})
    messages.success(request, _(
        "%(created)d certificates imported, %(updated)d already in the inventory, "
        "%(managed)d issued here.") % {"created": len(result.created),
                                       "updated": len(result.updated),
                                       "managed": len(result.managed)})


def _fetch(request, pk) -> InventoryCertificate:
    row = get_scoped_or_404(InventoryCertificate.objects.select_related("organization"),
                            request.user, pk=pk)
    enter(request, row.organization)
    return row


@portal_view
def inventory_detail(request, pk):
    row = _fetch(request, pk)
    return render(request, "certificates/inventory_detail.html", {
        "row": row,
        "endpoints": row.endpoints.order_by("address", "port"),
        "now": timezone.now(),
        **roles(request),
    })


@require_POST
@portal_view
def inventory_remove(request, pk):
    row = _fetch(request, pk)
    require(request, Role.OPERATOR)
    AuditEvent.record(request, action=AuditEvent.Action.INVENTORY_DISMISSED, subject=str(row),
                      params={"fingerprint": row.fingerprint_sha256})
    row.delete()
    messages.success(request, _("Removed from the inventory."))
    return redirect("certificates:inventory")


class _Echo:
    def write(self, value):
        return value


def _csv_value(value) -> str:
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


@portal_view
def inventory_export(request):
    """Every certificate as CSV, streamed: times in UTC (ISO 8601), lists
    space-separated, so that any tool reads it the same way."""
    writer = csv.writer(_Echo())
    organization = request.organization

    def lines():
        yield writer.writerow(listing.EXPORT_FIELDS)
        for row in listing.export_rows(organization):
            yield writer.writerow([_csv_value(row[name]) for name in listing.EXPORT_FIELDS])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = (
        f'attachment; filename="inventory-{organization.slug}-{stamp}.csv"')
    return response


@portal_view
def inventory_adopt(request, pk):
    """The form of a new certificate, filled from the row; saving it adopts."""
    row = _fetch(request, pk)
    require(request, Role.OPERATOR)
    if row.adopted_as_id:
        return redirect("certificates:certificate", row.adopted_as_id)
    form = CertificateForm(request.POST or None, initial=adoption.initial(row),
                           organization=request.organization)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            certificate = form.save()
            adoption.adopt(row, certificate)
        AuditEvent.record(request, action=AuditEvent.Action.CERTIFICATE_ADOPTED,
                          certificate=certificate,
                          params={"fingerprint": row.fingerprint_sha256, "source": row.source})
        messages.success(request, _("%(name)s is managed by the portal now; its next renewal "
                                    "is planned.") % {"name": certificate.common_name})
        return redirect("certificates:certificate", certificate.pk)
    return render(request, "certificates/inventory_adopt.html", {
        "form": form, "row": row, **roles(request)})

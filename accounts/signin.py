"""Sign-in policy on top of django-allauth: who must have a second factor, the
portal's address in e-mailed links, secrets encrypted at rest, re-authentication
before dangerous acts, and factor changes in the audit log."""

from urllib.parse import urljoin

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.decorators import reauthentication_required
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.conf import settings

from fujissl_portal import encryption

from .models import Membership, Role


def mfa_required(user) -> bool:
    """Owners, administrators and staff always; everyone in an organisation that
    requires it."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser:
        return True
    return Membership.objects.filter(user=user).filter(
        role__in=[Role.OWNER, Role.ADMIN]).exists() or Membership.objects.filter(
        user=user, organization__require_mfa=True).exists()


def has_mfa(user) -> bool:
    """A factor that proves possession: TOTP or a passkey (recovery codes alone are
    only the way back in)."""
    return Authenticator.objects.filter(
        user=user, type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]).exists()


@reauthentication_required
def _reauthenticated(request):
    return None


def ensure_recent_authentication(request) -> None:
    """Raises allauth's ReauthenticationRequired unless the person entered their
    password (or a factor) within REAUTHENTICATION_SECONDS; its middleware sends
    them to re-authenticate and then replays this request."""
    _reauthenticated(request)


class PortalAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        # People join by invitation; an open sign-up would let anyone in.
        return False

    def get_client_ip(self, request):
        # The same address the audit log records (AUDIT_TRUSTED_PROXY_*).
        from certificates.models.audit import client_address

        return client_address(request) or super().get_client_ip(request)

    def get_reset_password_from_key_url(self, key):
        # The link in the e-mail points at the portal's public address, never at
        # whatever Host header the request carried.
        from urllib.parse import urlsplit

        url = urlsplit(super().get_reset_password_from_key_url(key))
        path = url.path + (f"?{url.query}" if url.query else "")
        return urljoin(settings.PORTAL_BASE_URL.rstrip("/") + "/", path.lstrip("/"))


class PortalMFAAdapter(DefaultMFAAdapter):
    # TOTP secrets and passkey data are keys: encrypted at rest like the others.
    def encrypt(self, text):
        return encryption.encrypt(text)

    def decrypt(self, encrypted_text):
        return encryption.decrypt(encrypted_text)

    def can_delete_authenticator(self, authenticator):
        # Someone who must have a factor keeps their last one (allauth asks this
        # before deactivating the authenticator app).
        if not mfa_required(authenticator.user):
            return True
        return Authenticator.objects.filter(
            user_id=authenticator.user_id,
            type__in=[Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN],
        ).exclude(pk=authenticator.pk).exists()


def record_mfa_change(sender, request, user, authenticator=None, **kwargs):
    from certificates.models import AuditEvent

    change = {"authenticator_added": "added", "authenticator_removed": "removed",
              "authenticator_reset": "reset"}.get(kwargs.get("signal_name", ""), "")
    params = {"type": getattr(authenticator, "type", ""), "change": change}
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        AuditEvent.record(request, action=AuditEvent.Action.MFA_CHANGED,
                          organization=membership.organization, user=user,
                          subject=user.get_username(), params=params)


def connect_signals():
    from allauth.mfa import signals

    for name in ("authenticator_added", "authenticator_removed", "authenticator_reset"):
        signal = getattr(signals, name)

        def receiver(sender, _name=name, **kwargs):
            record_mfa_change(sender, signal_name=_name, **kwargs)

        signal.connect(receiver, weak=False, dispatch_uid=f"accounts-audit-{name}")

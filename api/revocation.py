"""A person's API tokens die with the credential or the membership behind them:
when their password changes (a leaked password may have made them), when they
are deactivated, and when they leave an organisation (a token acts with every
role its user holds, and may sit in that organisation's scripts)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, pre_save
from django.utils import timezone

from accounts.models import Membership

from .models import APIToken


def revoke_tokens_of(user_id) -> int:
    return APIToken.objects.filter(user_id=user_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now())


def on_user_saved(sender, instance, update_fields=None, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. last_login on every sign-in: no query
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before is None:
        return
    if before["password"] != instance.password or (before["is_active"]
                                                   and not instance.is_active):
        revoke_tokens_of(instance.pk)


def on_membership_deleted(sender, instance, **kwargs):
    revoke_tokens_of(instance.user_id)


def connect():
    pre_save.connect(on_user_saved, sender=get_user_model(), dispatch_uid="api-token-revoke-user")
    post_delete.connect(on_membership_deleted, sender=Membership,
                        dispatch_uid="api-token-revoke-membership")

"""Thin Celery tasks of the API app: ids in, one service call each."""

from celery import shared_task

from . import webhooks


@shared_task(name="api.deliver_webhook", ignore_result=True, acks_late=True,
             soft_time_limit=60, time_limit=90)
def deliver_webhook(delivery_id: int):
    webhooks.deliver(delivery_id)


@shared_task(name="api.retry_webhooks", ignore_result=True)
def retry_webhooks():
    for delivery_id in webhooks.due_deliveries():
        deliver_webhook.delay(delivery_id)

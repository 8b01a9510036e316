"""Thin Celery tasks of the API app: ids in, one service call each.

Import rule: tasks import the services inside each function (the services
import this module, to enqueue on commit).
"""

from celery import shared_task


@shared_task(name="api.deliver_webhook", ignore_result=True, acks_late=True,
             soft_time_limit=60, time_limit=90)
def deliver_webhook(delivery_id: int):
    from . import webhooks  # noqa: PLC0415 - see the import rule above

    webhooks.deliver(delivery_id)


@shared_task(name="api.retry_webhooks", ignore_result=True)
def retry_webhooks():
    from . import webhooks  # noqa: PLC0415

    for delivery_id in webhooks.due_deliveries():
        deliver_webhook.delay(delivery_id)

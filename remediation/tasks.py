from celery import shared_task


@shared_task(name="remediation.notify_new_activity", time_limit=300, ignore_result=True)
def notify_new_activity(activity_id: str) -> None:
    """Email the IT staff of the activity's device groups about a new request (once)."""
    from .notifications import notify_new_activity as notify

    notify(activity_id=activity_id)

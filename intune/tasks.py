from celery import shared_task


@shared_task(name="intune.push_activity", time_limit=600, ignore_result=True)
def intune_push_activity(activity_id: str) -> None:
    """Create the Intune security task of one activity (idempotent)."""
    from .services import intune_push

    intune_push(activity_id=activity_id)

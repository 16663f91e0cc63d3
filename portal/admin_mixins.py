"""Admin building blocks shared by the apps."""


class ReadOnlyAdminMixin:
    """For objects only services write (activities, exceptions, Intune tasks, the admin log):
    the admin lists and shows them but never adds, edits or deletes them directly."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

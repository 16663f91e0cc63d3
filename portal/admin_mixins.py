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


class WideChangelistMixin:
    """A changelist whose columns need the whole 1440-pixel window beside its filters: no app
    navigation on the left (Home and the breadcrumbs lead everywhere), the portal's list styles."""

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "is_nav_sidebar_enabled": False}
        return super().changelist_view(request, extra_context=extra_context)

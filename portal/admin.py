"""The audit trail of the admin: Django's LogEntry, read-only, for superusers only.

Activities and exceptions keep their own history (ActivityEvent, ExceptionEvent); every
add / change / delete made through the admin is a LogEntry, shown here. Sign-ins, failed
sign-ins and lock-outs are in the log (portal.security) and in django-axes' admin pages.
"""

from django.contrib import admin
from django.contrib.admin.models import LogEntry

from portal.admin_mixins import ReadOnlyAdminMixin


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    date_hierarchy = "action_time"
    list_display = ("action_time", "user", "content_type", "object_repr", "action_flag", "change_message")
    list_filter = ("action_flag", "content_type")
    search_fields = ("object_repr", "change_message", "user__username", "user__email")
    list_select_related = ("user", "content_type")
    readonly_fields = [field.name for field in LogEntry._meta.fields]

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

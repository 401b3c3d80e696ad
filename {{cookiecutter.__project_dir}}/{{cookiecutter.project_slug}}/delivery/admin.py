from django.contrib import admin
from django.db.models import Count
from django.utils import timezone
from post_office.admin import EmailAdmin as PostOfficeEmailAdmin
from post_office.models import STATUS, Email

admin.site.unregister(Email)


@admin.action(description="Send the selected mails again")
def requeue(modeladmin, request, queryset):
    queryset.update(status=STATUS.queued, scheduled_time=timezone.now())


@admin.register(Email)
class EmailAdmin(PostOfficeEmailAdmin):
    """post_office's admin, with a column that says where each mail stands and,
    above the list, how many mails stand where."""

    list_display = [
        "truncated_message_id",
        "to_display",
        "shortened_subject",
        "delivery",
        "last_updated",
        "use_template",
    ]
    actions = [requeue]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "status_counts": status_counts()}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Delivery", ordering="status")
    def delivery(self, email):
        attempts = email.number_of_retries or 0
        if email.status is None:
            return f"sending (attempt {attempts + 1})"
        if email.status == STATUS.requeued:
            when = timezone.localtime(email.scheduled_time).strftime("%Y-%m-%d %H:%M:%S")
            return f"retrying: {attempts} failed attempts, next at {when}"
        scheduled = email.scheduled_time
        if email.status == STATUS.queued and scheduled and scheduled > timezone.now():
            return f"scheduled for {timezone.localtime(scheduled):%Y-%m-%d %H:%M}"
        return email.get_status_display()


def status_counts():
    """All mail counted by status: "sent 120 · queued 3 · sending 1 · retrying 2 · failed 1"."""
    counts = dict(Email.objects.order_by().values_list("status").annotate(Count("pk")))
    shown = [
        ("sent", STATUS.sent),
        ("queued", STATUS.queued),
        ("sending", None),
        ("retrying", STATUS.requeued),
        ("failed", STATUS.failed),
    ]
    return " · ".join(f"{name} {counts.get(status, 0)}" for name, status in shown)

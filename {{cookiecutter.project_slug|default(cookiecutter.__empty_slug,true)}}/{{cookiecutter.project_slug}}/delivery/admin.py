from django.contrib import admin
from django.utils import timezone
from post_office.admin import EmailAdmin as PostOfficeEmailAdmin
from post_office.models import STATUS, Email

admin.site.unregister(Email)


@admin.action(description="Send the selected mails again")
def requeue(modeladmin, request, queryset):
    queryset.update(status=STATUS.queued, scheduled_time=timezone.now())


@admin.register(Email)
class EmailAdmin(PostOfficeEmailAdmin):
    """post_office's admin, with a column that says where each mail stands."""

    list_display = [
        "truncated_message_id",
        "to_display",
        "shortened_subject",
        "delivery",
        "last_updated",
        "use_template",
    ]
    actions = [requeue]

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

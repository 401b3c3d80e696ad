"""The admin of recipients: the suppressed addresses (add one by hand, lift one), each sent
mail's recipients with what the email service said last, and their events. The mail list
(delivery/admin.py) shows the recipients inline and counts the mails every recipient of
which bounced."""

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.utils import timezone
from post_office.models import Email

from . import suppression
from .models import Event, Reason, Recipient, Suppression


class ReadOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RecipientInline(ReadOnly, admin.TabularInline):
    """On a mail's page: each recipient, what the email service said last, and when."""

    model = Recipient
    fields = readonly_fields = [
        "address",
        "last_event",
        "when",
        "last_said",
        "provider",
        "message_id",
    ]
    extra = 0
    verbose_name_plural = "what the email service said, per recipient"

    @admin.display(description="when")
    def when(self, recipient):
        return local(recipient.last_event_at)


class EventInline(ReadOnly, admin.TabularInline):
    model = Event
    fields = readonly_fields = ["kind", "at", "description", "mta_response", "received"]
    extra = 0


@admin.register(Recipient)
class RecipientAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["address", "email", "last_event", "last_event_at", "last_said", "provider"]
    list_filter = ["last_event", "bounced", "provider"]
    search_fields = ["address", "message_id"]
    list_select_related = ["email"]
    inlines = [EventInline]


class ActiveFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "in force"), ("no", "lifted")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(lifted=None)
        if self.value() == "no":
            return queryset.exclude(lifted=None)
        return queryset


# Only for staff who may change suppressions: viewing them is not enough.
@admin.action(
    description="Lift the selected suppressions: mail these addresses again", permissions=["change"]
)
def lift(modeladmin, request, queryset):
    lifted = suppression.lift(queryset, request.user)
    for row in lifted:
        modeladmin.log_change(request, row, f"Lifted the suppression of {row.address}")
    level = messages.SUCCESS if lifted else messages.WARNING
    modeladmin.message_user(request, f"{len(lifted)} suppressions lifted.", level)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """The addresses not to mail. Staff add one by hand, or lift one (the row stays, with
    who lifted it and when, and the admin's history logs it)."""

    list_display = ["address", "scope", "reason", "detail", "created", "lifted", "lifted_by"]
    list_filter = [ActiveFilter, "scope", "reason"]
    search_fields = ["address"]
    fields = ["address", "scope", "detail"]
    actions = [lift]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "address",
            "scope",
            "reason",
            "detail",
            "event",
            "created",
            "created_by",
            "lifted",
            "lifted_by",
        ]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj) if obj else self.fields

    def has_delete_permission(self, request, obj=None):
        return False  # lift it instead: the record stays

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.reason = Reason.BY_HAND
        super().save_model(request, obj, form, change)


class EventsFilter(admin.SimpleListFilter):
    """For the mail list: the mails every recipient of which bounced."""

    title = "what the email service said"
    parameter_name = "events"

    def lookups(self, request, model_admin):
        return [("bounced", "every recipient bounced")]

    def queryset(self, request, queryset):
        return every_recipient_bounced(queryset) if self.value() == "bounced" else queryset


def every_recipient_bounced(emails):
    """The mails with recipients known to the service, all of which bounced."""
    recipients = Recipient.objects.filter(email=OuterRef("pk"))
    return emails.filter(Exists(recipients)).exclude(Exists(recipients.filter(bounced=False)))


def event_counts():
    """[(value, name, how many mails)] for the mail list's counts."""
    return [("bounced", "every recipient bounced", every_recipient_bounced(Email.objects).count())]


def local(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"

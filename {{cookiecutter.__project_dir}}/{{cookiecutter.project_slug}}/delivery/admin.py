"""post_office's admin for the mail, reading like a dashboard: the mails counted by state
(each count a filter), one state column in the words of models.State, the next attempt,
and Resend and "Send the selected mails again" through the workers."""

from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseNotFound, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from post_office import admin as post_office_admin
from post_office.models import STATUS, Email, Log

from ..recipients import admin as recipients_admin
from . import handoff, pace, state
from .models import Delivery, Lane, LogOutcome, Outcome, State

# The inline images a mail's page shows, served from the site's origin: raster types only
# (an SVG image can carry script), sandboxed and never sniffed as another type.
SHOWN_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}

admin.site.unregister(Email)
admin.site.unregister(Log)


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return State.choices

    def queryset(self, request, queryset):
        return queryset.filter(delivery__state=self.value()) if self.value() else queryset


class LaneFilter(admin.SimpleListFilter):
    title = "lane"
    parameter_name = "lane"

    def lookups(self, request, model_admin):
        return Lane.choices

    def queryset(self, request, queryset):
        return queryset.filter(delivery__lane=self.value()) if self.value() else queryset


def outcome(log):
    """What a Log row records, in the states' words: sent, or a failed attempt's stored
    outcome (retrying or failed); a row post_office wrote itself has none: failed."""
    if log.status == STATUS.sent:
        return "sent"
    try:
        return log.outcome.outcome
    except LogOutcome.DoesNotExist:
        return Outcome.FAILED.value


class LogInline(post_office_admin.LogInline):
    readonly_fields = fields = ["date", "what_happened", "exception_type", "message"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("outcome")

    @admin.display(description="what happened")
    def what_happened(self, log):
        return outcome(log)


# Offered to staff who may change mails (as the Resend button), not to those who only view.
@admin.action(description="Send the selected mails again", permissions=["change"])
def send_again(modeladmin, request, queryset):
    handed, skipped = [], 0
    for email in queryset:
        again, _ = state.send_again(email.pk)
        if again:
            handed.append(email)
        else:
            skipped += 1
    handoff.after_commit(handed)
    text = f"{len(handed)} mails handed to a worker again."
    if skipped:
        text += f" {skipped} left alone: they are being sent right now."
    modeladmin.message_user(request, text, messages.SUCCESS if handed else messages.WARNING)


@admin.register(Email)
class EmailAdmin(post_office_admin.EmailAdmin):
    list_display = ["id", "to_display", "short_subject", "state", "delivery_details"]
    list_filter = [
        StateFilter,
        LaneFilter,
        recipients_admin.EventsFilter,
        "priority",
        "template__name",
    ]
    list_select_related = ["delivery", "template"]
    readonly_fields = [*post_office_admin.EmailAdmin.readonly_fields, "status", "delivery_details"]
    inlines = [post_office_admin.AttachmentInline, LogInline, recipients_admin.RecipientInline]
    actions = [send_again]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "state_counts": state_counts(),
            "event_counts": recipients_admin.event_counts(),
            "limits": pace.standing(),
            "lane_counts": lane_counts(),
        }
        return super().changelist_view(request, extra_context)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return [(None, {"fields": ["delivery_details"]}), *fieldsets] if obj else fieldsets

    @admin.display(description="subject", ordering="subject")
    def short_subject(self, email):
        return Truncator(self.shortened_subject(email)).chars(60)

    @admin.display(description="state", ordering="delivery__state")
    def state(self, email):
        delivery = delivery_of(email)
        return format_html(
            '<span class="mail-state mail-{}">{}</span>',
            delivery.state,
            delivery.get_state_display(),
        )

    @admin.display(description="delivery")
    def delivery_details(self, email):
        return describe(delivery_of(email), email)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "scheduled_time" in form.changed_data:
            state.rescheduled(obj.pk)
            handoff.after_commit([obj])

    def fetch_email_image(self, request, pk, content_id):
        response = super().fetch_email_image(request, pk, content_id)
        if response.status_code != 200:
            return response
        if response["Content-Type"] not in SHOWN_IMAGES:
            return HttpResponseNotFound(
                f"A {response['Content-Type']} image is not shown here: only raster images are.",
                content_type="text/plain",
            )
        response["Content-Security-Policy"] = "sandbox; default-src 'none'"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    def resend(self, request, pk):
        """The Resend button: a page that asks, then a POST that hands the mail out again."""
        email = self._get_object_or_deny(request, pk, "change")
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "email": email,
                "opts": self.opts,
                "delivery": describe(delivery_of(email), email),
                "title": "Send this mail again?",
            }
            return TemplateResponse(request, "admin/post_office/email/resend.html", context)
        again, what = state.send_again(email.pk)
        if again:
            handoff.after_commit([email])
        level = messages.SUCCESS if again else messages.WARNING
        self.message_user(request, f"Mail {email.pk} to {', '.join(email.to)}: {what}.", level)
        return HttpResponseRedirect(reverse("admin:post_office_email_change", args=[email.pk]))


@admin.register(Log)
class LogAdmin(post_office_admin.LogAdmin):
    list_display = ["date", "email", "what_happened", post_office_admin.get_message_preview]
    list_select_related = ["email", "outcome"]

    @admin.display(description="what happened")
    def what_happened(self, log):
        return outcome(log)


def delivery_of(email):
    """The mail's delivery; a mail no door recorded yet (the sweeper will) reads as queued."""
    try:
        return email.delivery
    except Delivery.DoesNotExist:
        return Delivery(email=email, state=State.QUEUED, changed=email.created)


def describe(delivery, email):
    """One line on where the mail stands, for the list and the mail's page."""
    attempts = delivery.failed_attempts
    failed = f"{attempts} failed attempt{'s' * (attempts != 1)}"
    if delivery.state == State.RETRYING:
        return f"{failed}; next at {local(delivery.due)}: {Truncator(delivery.reason).chars(80)}"
    if delivery.state == State.SCHEDULED:
        return f"scheduled for {local(delivery.due)}"
    if delivery.state == State.HELD:
        return f"held until {local(delivery.due)}: {Truncator(delivery.reason).chars(80)}"
    if delivery.state == State.SENDING:
        return f"attempt {attempts + 1} since {local(delivery.changed)}"
    if delivery.state == State.FAILED:
        return f"after {failed}: {Truncator(delivery.reason).chars(80)}"
    if delivery.state == State.SENT:
        recipients = len(email.to) + len(email.cc) + len(email.bcc)
        if delivery.refused:
            refused = "; ".join(
                f"{address} ({answer})" for address, answer in delivery.refused.items()
            )
            return (
                f"sent to {recipients - len(delivery.refused)} of {recipients}; refused: {refused}"
            )
        return f"sent {local(delivery.changed)}"
    return ""


def local(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def state_counts():
    """[(state, its name, how many mails are in it)] for every state, in the order of State."""
    counts = dict(Delivery.objects.order_by().values_list("state").annotate(Count("pk")))
    unrecorded = Email.objects.filter(delivery=None, status__in=(STATUS.queued, STATUS.requeued))
    counts[State.QUEUED] = counts.get(State.QUEUED, 0) + unrecorded.count()
    return [(value, label, counts.get(value, 0)) for value, label in State.choices]


def lane_counts():
    """[(lane, its name, how many mails wait in it)]."""
    waiting = Delivery.objects.filter(state__in=state.PENDING).order_by().values_list("lane")
    counts = dict(waiting.annotate(Count("pk")))
    return [(value, label, counts.get(value, 0)) for value, label in Lane.choices]

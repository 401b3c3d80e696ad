from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from config.health import healthz, mail_health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("healthz/mail", mail_health, name="mail-health"),
    # The email services' webhooks (/anymail/...) and one-click unsubscribe.
    path("", include(f"{settings.SITE_PACKAGE}.recipients.urls")),
    path("", include(f"{settings.SITE_PACKAGE}.metrics.urls")),  # /metrics, for Prometheus
]

from django.contrib import admin
from django.urls import path

from config.health import healthz, mail_health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("healthz/mail", mail_health, name="mail-health"),
]

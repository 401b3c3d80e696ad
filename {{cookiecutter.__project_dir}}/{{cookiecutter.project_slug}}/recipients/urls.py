from django.urls import path

from . import unsubscribe, webhooks

urlpatterns = [
    *webhooks.urlpatterns,
    path("unsubscribe/<str:token>/", unsubscribe.one_click, name="unsubscribe"),
]

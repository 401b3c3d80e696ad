import logging

from django.db import DatabaseError
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .collector import MailCollector
from config.health import may_read_reasons, token_refused

logger = logging.getLogger(__name__)


@require_safe
@never_cache
def metrics(request):
    """The site's mail in Prometheus' text format, for `Authorization: Bearer <HEALTH_TOKEN>`
    and staff; 401 to anyone who says nothing, 403 to anyone else."""
    if token_refused(request):
        return plain("this token may not read the metrics\n", 403)
    try:
        if may_read_reasons(request, database_answers=True):
            return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
    except DatabaseError:
        logger.exception("/metrics: the database did not answer")
        return plain("the database did not answer\n", 503)
    if "Authorization" in request.headers or request.user.is_authenticated:
        return plain("this token or user may not read the metrics\n", 403)
    answer = plain("send Authorization: Bearer <HEALTH_TOKEN>, or log in as staff\n", 401)
    answer["WWW-Authenticate"] = "Bearer"
    return answer


def scrape():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailCollector())
    return generate_latest(registry)


def plain(text, status):
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")

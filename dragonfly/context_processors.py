"""Template context shared by every page."""

from django.conf import settings


def site(request):
    return {
        "DRAGONFLY_BASE_URL": settings.DRAGONFLY_BASE_URL,
        "DRAGONFLY_EMBEDDED": settings.DRAGONFLY_EMBEDDED,
    }

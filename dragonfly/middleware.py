"""Control-plane middleware: request ids, probes that ignore the Host, async-capable static files."""

import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from whitenoise.middleware import WhiteNoiseMiddleware

from observability.logs import request_id_var


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _start(self, request) -> str:
        request_id = uuid.uuid4().hex
        request.request_id = request_id
        request_id_var.set(request_id)
        return request_id

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request_id = self._start(request)
        response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response

    async def __acall__(self, request):
        request_id = self._start(request)
        response = await self.get_response(request)
        response["X-Request-Id"] = request_id
        return response


class ProbeMiddleware:
    """/healthz, /readyz (and /metrics for internal addresses) answer before the Host is checked.

    Container healthchecks, load balancers and Prometheus reach a web process by its address
    (`127.0.0.1:8000`, `web1:8000`), which ALLOWED_HOSTS rightly refuses for pages. These answers
    carry nothing derived from the Host, so they skip that check; everything else does not.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    @staticmethod
    def _probe(request):
        from dragonfly import views

        if request.path == "/healthz":
            return views.healthz
        if request.path == "/readyz":
            return views.readyz
        if request.path == "/metrics" and views.is_internal_address(
            request.META.get("REMOTE_ADDR", "")
        ):
            return views.metrics
        return None

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        probe = self._probe(request)
        return probe(request) if probe else self.get_response(request)

    async def __acall__(self, request):
        probe = self._probe(request)
        if probe:
            return await sync_to_async(probe)(request)
        return await self.get_response(request)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, async-capable: only a static file's lookup and open go to a thread.

    WhiteNoise's own middleware is sync-only, so under Daphne Django would run it (and every
    middleware after it) in a thread for every page. Here a request outside the static files
    goes straight on without leaving the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=django_settings):
        super().__init__(get_response, settings)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def _serve_static(self, request):
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        return None if static_file is None else self.serve(static_file, request)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        path = request.path_info
        if path.startswith(self.static_prefix) or path in self.files:
            response = await sync_to_async(self._serve_static)(request)
            if response is not None:
                return response
        return await self.get_response(request)

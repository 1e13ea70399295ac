"""Control-plane middleware: a request id for every Django request, echoed and logged."""

import uuid

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from dragonfly.logs import request_id_var


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

"""Our own error pages: 404, 500 and the CSRF failure (403), in the product's look.

The 500 page renders without the request's context (no context processors, no session, no
database): whatever broke the request must not break its error page too.
"""

from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import render
from django.template import loader

from observability.logs import request_id_var


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    return render(request, "404.html", {"path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    html = loader.get_template("500.html").render({"request_id": request_id_var.get()})
    return HttpResponseServerError(html)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return render(request, "403_csrf.html", status=403)

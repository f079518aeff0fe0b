"""One JSON error shape for the REST API: ``{"error": "...", "details": {...}}``."""

from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"error": str(data["detail"])}
    else:
        response.data = {"error": "The request is not valid; see details.", "details": data}
    return response

"""One JSON error shape for the REST API: ``{"error": "...", "details": {...}}``, for every error, unexpected ones
included: a deployment pipeline that calls the API parses JSON, never Django's HTML error page."""

import logging
from typing import Any

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

logger = logging.getLogger("django.request")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        # A bug, not bad input: logged with its traceback as Django logs a 500, answered in the API's shape.
        request = context.get("request")
        logger.error("Internal Server Error: %s", getattr(request, "path", "?"), exc_info=exc)
        set_rollback()
        return Response({"error": "Internal server error: the request failed on the server; it has been logged."},
                        status=500)  # fmt: skip
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"error": str(data["detail"])}
    else:
        response.data = {"error": "The request is not valid; see details.", "details": data}
    return response

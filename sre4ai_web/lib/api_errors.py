"""One JSON error shape for the REST API: ``{"error": "...", "details": {...}}``, for every error, unexpected ones
included: a deployment pipeline that calls the API parses JSON, never Django's HTML error page. A form posted
through the API (the SLO API) also lists its errors per field, as the page shows them: ``"errors": {field: [...]}``.

Views raise ``ApiError`` (or a subclass, such as ingest's IngestError) instead of building error responses;
``exception_handler`` formats it, DRF's own exceptions and unexpected ones alike."""

import logging
from typing import Any

from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

logger = logging.getLogger("django.request")


class ApiError(APIException):
    """An error answer: the HTTP status, a message that says what to fix, optional details, a form's errors per field
    and, for back-pressure, the seconds after which a retry may succeed (Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: Any = None,
        field_errors: dict[str, list[str]] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(message)
        self.status_code = status
        self.status = status
        self.message = message
        self.details = details
        self.field_errors = field_errors
        self.retry_after = retry_after


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        set_rollback()
        body: dict[str, Any] = {"error": exc.message}
        if exc.details is not None:
            body["details"] = exc.details
        if exc.field_errors is not None:
            body["errors"] = exc.field_errors
        headers = {} if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
        return Response(body, status=exc.status, headers=headers)
    response = drf_exception_handler(exc, context)
    if response is None:
        # A bug, not bad input: logged with its traceback as Django logs a 500, answered in the API's shape.
        request = context.get("request")
        logger.error("Internal Server Error: %s", getattr(request, "path", "?"), exc_info=exc)
        set_rollback()
        return Response(
            {"error": "Internal server error: the request failed on the server; it has been logged."}, status=500
        )
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"error": str(data["detail"])}
    else:
        response.data = {"error": "The request is not valid; see details.", "details": data}
    return response

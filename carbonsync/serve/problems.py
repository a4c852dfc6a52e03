"""Errors as RFC 7807 problem details (``application/problem+json``): every error the service answers with.

``type`` is a relative URI naming the problem (``/problems/<slug>``), ``title`` its short name, ``status`` the
HTTP status, ``detail`` what went wrong in words, ``instance`` the request path, and for a bad request
``parameter`` the name of the offending parameter or body field.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

__all__ = ["PROBLEM_JSON", "Problem", "install_problem_handlers", "problem_response"]

PROBLEM_JSON = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 404: "Not found", 405: "Method not allowed",
          413: "Request too large", 422: "Bad request", 500: "Internal server error", 503: "Service unavailable"}


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, slug: str, detail: str, *, parameter: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.detail, self.parameter = status, slug, detail, parameter
        self.headers, self.extra = headers or {}, extra


def problem_response(request: Request, status: int, slug: str, detail: str, *, parameter: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": TITLES.get(status, "Error"), "status": status,
                            "detail": detail, "instance": request.url.path}
    if parameter is not None:
        body["parameter"] = parameter
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _parameter(loc: tuple) -> str:
    """``("query", "windowSize")`` -> ``windowSize``; ``("body", "jobs", 3, "hours")`` -> ``jobs[3].hours``."""
    parts = [p for p in loc if p not in ("query", "body", "path", "header")]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document (validation errors as 400 naming the parameter)."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.slug, exc.detail, parameter=exc.parameter,
                                headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        parameter = _parameter(tuple(first.get("loc", ())))
        detail = f"{parameter}: {first.get('msg', 'invalid')}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problem(s))"
        return problem_response(request, 400, "bad-parameter", detail, parameter=parameter,
                                errors=[{"parameter": _parameter(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
                                        for e in errors[:20]])

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}"
        return problem_response(request, exc.status_code, slug, detail, headers=getattr(exc, "headers", None))

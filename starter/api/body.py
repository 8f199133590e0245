"""How the API's routes take a JSON body: FastAPI parses it into the route's model (`starter.api.schemas`), and
`JsonBodyRoute` keeps the README's error contract around that parse.

- Every problem with a body is answered once the caller is known to be allowed (after the 401 and 403), and
  before anything is looked up or changed.
- A body that is not JSON is answered `422` on `body` ("is not valid JSON (…)"), one that is not a JSON object
  likewise ("must be a JSON object with the enrollment's fields"); an empty body too, unless the route's body
  is optional (then its model's defaults apply).
- The models' rules are answered as the rules say them: `422 {"errors": [{"field": ..., "message": ...}]}`.
- A bad query parameter or header is answered as everywhere else, first.

(`SecurityMiddleware` has already answered a body over the cap, 413, and one sent as anything but JSON, 422.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.types import Message

from domain.models import FieldError
from starter.api.schemas import free_mail_domains
from starter.services.errors import InvalidInput

NOT_AN_OBJECT = "must be a JSON object with the enrollment's fields"
_NO_MODEL_TAKES = b"[]"
"""What FastAPI is handed in place of a body that is not a JSON object: valid JSON that no model takes, so the
route's dependencies (who is asking) run first and the parse then fails, to be answered with the problem."""


def body_problem(raw: bytes, *, optional: bool) -> FieldError | None:
    """What is wrong with `raw` as a JSON object, if anything."""
    if optional and not raw.strip():
        return None
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, absurd nesting, a 5,000-digit number
        return FieldError(field="body", message=f"is not valid JSON ({exc})")
    if not isinstance(body, dict):
        return FieldError(field="body", message=NOT_AN_OBJECT)
    return None


def _with_body(request: Request, body: bytes) -> Request:
    """`request` with `body` in place of the one it was sent with."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _answer(exc: RequestValidationError, problem: FieldError | None) -> Exception:
    """What a failed parse is answered with: the parameters' own errors first, then the body's problem, then
    the model's errors (the rules' fields and sentences)."""
    errors = exc.errors()
    outside = [error for error in errors if tuple(error["loc"])[:1] != ("body",)]
    if outside:
        return RequestValidationError(outside, body=exc.body)
    if problem is not None:
        return InvalidInput([problem])
    return InvalidInput([FieldError(field=_field(tuple(error["loc"])), message=error["msg"]) for error in errors])


def _field(loc: tuple[int | str, ...]) -> str:
    """The field an error of the body's model names: ("body", "reason") is "reason", ("body",) the body."""
    return ".".join(str(part) for part in loc[1:]) if len(loc) > 1 else "body"


class JsonBodyRoute(APIRoute):
    """A route of the JSON API (see the module's docstring); routes without a body are left as FastAPI makes
    them."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle
        optional = not self.body_field.field_info.is_required()

        async def route(request: Request) -> Response:
            raw = await request.body()
            problem = body_problem(raw, optional=optional)
            if problem is not None:
                request = _with_body(request, _NO_MODEL_TAKES)
            elif optional and not raw.strip():
                request = _with_body(request, b"")
            with free_mail_domains(request.app.state.settings.free_mail):
                try:
                    return await handle(request)
                except RequestValidationError as exc:
                    raise _answer(exc, problem) from exc

        return route

"""What the API's routes may answer besides their result, for the OpenAPI: the same few shapes everywhere."""

from __future__ import annotations

from typing import Any

from starter.api.schemas import Detail, ErrorList

CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": Detail},
    503: {"model": Detail, "description": "The workflow service is unreachable or did not answer in time."},
}
"""What a change through the workflow may answer besides its result: refused, or Temporal out of reach."""

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {422: {"model": ErrorList}}
"""A bad body: every bad field named (`starter.api.body`)."""

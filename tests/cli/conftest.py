"""The CLI tests run against the same stack as the integration tests."""

from tests.integration.conftest import stack

__all__ = ["stack"]

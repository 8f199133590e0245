"""The API as `enroll up` runs it: the product's app plus the /dev/mailbox pages while its mail sink runs."""

from __future__ import annotations

from fastapi import FastAPI

from domain.settings import Settings
from observability import tracing
from starter.app import create_app, serve
from starter.dev import mailbox
from store.migrate import upgrade_to_head


def create_dev_app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    if settings.dev_mailbox:
        app.include_router(mailbox.router)
    return app


def main() -> None:
    settings = Settings()
    if problem := settings.missing_secret():
        raise SystemExit(problem)
    tracing.configure(settings, "enroll-api")  # before the app and its engines exist
    upgrade_to_head(settings.effective_database_url)
    serve(create_dev_app(settings), settings)


if __name__ == "__main__":
    main()

"""The tests' webhook receiver is the dev one (`starter.dev.webhook_receiver`): a real HTTP server that verifies
every signature with the reference `standardwebhooks` library."""

from starter.dev.webhook_receiver import Received, Receiver

__all__ = ["Received", "Receiver"]

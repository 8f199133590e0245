"""Webhooks out: signing per Standard Webhooks and posting to a receiver's URL without reaching our own network."""

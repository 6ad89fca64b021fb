"""clientkeys: a contract-first stand-in for Sentry's Project Client Keys API."""

__version__ = "0.1.0"

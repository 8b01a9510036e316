"""Alerts to notification channels (apprise) besides e-mail."""

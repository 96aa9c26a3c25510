"""Routing alerts to Alertmanager and webhooks (`streamdrift alerts route`)."""

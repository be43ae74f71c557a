"""Alerts: routing by grade, Slack message formatting, the outbox and its delivery."""

"""Slack: the full-featured sink. Block Kit rendering (render.py) and the Web API sink
with threads, edits, buttons, files and the lookup before a retry (sink.py)."""

"""The web side: Slack interactivity (buttons, modal, slash command) and /healthz."""

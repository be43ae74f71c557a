"""Training the transformer grader (needs the `train` extra: torch). Serving never imports this."""

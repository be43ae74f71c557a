"""The consumer-rights report: figures from stored cases, charts, HTML/PDF, CSV, JSON."""

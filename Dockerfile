# The serving image: `koubei run` (scheduler) and `koubei serve` (Slack + /metrics).
# Only what serving needs: the package, its config and the grader's ONNX model;
# no training extra (no torch) and no training weights (.dockerignore drops them).
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KOUBEI_CONFIG=/app/config/koubei.yaml \
    KOUBEI_HEALTH_URL=http://127.0.0.1:9108/healthz

# A Chinese font for the report's charts; Pango and HarfBuzz for its PDF.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fontconfig fonts-wqy-microhei \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY config ./config
# The grader's two models (ONNX, int8): config/koubei.yaml names koubei-bert-small-l8 and
# koubei-e5-small6f, the shipped cascade (the base model's torch weights are left out).
COPY models ./models
RUN pip install --no-cache-dir . \
 && useradd --create-home --uid 10001 koubei \
 && mkdir -p /app/var /app/out \
 && chown koubei:koubei /app/var /app/out

USER koubei
# SQLite under /app/var unless DATABASE_URL points at PostgreSQL; reports under /app/out.
VOLUME ["/app/var", "/app/out"]
# 8080: koubei serve (Slack, /healthz, /metrics); 9108: koubei run (/healthz, /metrics).
EXPOSE 8080 9108
# koubei run answers on 9108; a serve container sets KOUBEI_HEALTH_URL to :8080/healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['KOUBEI_HEALTH_URL'], timeout=4)"]
CMD ["koubei", "run"]

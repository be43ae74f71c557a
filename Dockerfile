FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KOUBEI_CONFIG=/app/config/koubei.yaml

# A Chinese font for the report's charts; Pango and HarfBuzz for its PDF.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fontconfig fonts-wqy-microhei \
      libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY config ./config
# The grader's model (ONNX, int8); config/koubei.yaml points at ../models/koubei-bert-small.
COPY models ./models
RUN pip install --no-cache-dir . \
 && useradd --create-home --uid 10001 koubei \
 && mkdir -p /app/var /app/out \
 && chown koubei:koubei /app/var /app/out

USER koubei
# SQLite under /app/var unless DATABASE_URL points at PostgreSQL; mount a volume there.
VOLUME ["/app/var"]
CMD ["koubei", "run"]

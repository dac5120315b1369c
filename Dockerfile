# Huizhen server image. Redis is external here: set HUIZHEN_REDIS_URL (compose brings one).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HUIZHEN_HOST=0.0.0.0 HUIZHEN_PORT=8080 HUIZHEN_DATA_DIR=/var/lib/huizhen

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/huizhen --create-home huizhen

WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY media ./media
COPY client_web ./client_web
# Editable install: the server finds client_web/ beside its package in /app.
RUN pip install --no-cache-dir -e .

USER huizhen
EXPOSE 8080
VOLUME ["/var/lib/huizhen"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${HUIZHEN_PORT}/healthz" || exit 1
ENTRYPOINT ["huizhen"]
CMD ["serve"]

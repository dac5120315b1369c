# Huizhen server image. Redis is external here: set HUIZHEN_REDIS_URL (compose brings one).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HUIZHEN_HOST=0.0.0.0 HUIZHEN_PORT=8080 HUIZHEN_DATA_DIR=/var/lib/huizhen

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl fonts-noto-cjk \
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
# TLS (docs/deployment.md): mount PEM files and set HUIZHEN_TLS_CERT_FILE / HUIZHEN_TLS_KEY_FILE.
# The server sets umask 077 itself; files in the volume are private to uid 10001.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD if [ -n "$HUIZHEN_TLS_CERT_FILE" ]; then s=https; else s=http; fi; \
      curl -fsSk "$s://127.0.0.1:${HUIZHEN_PORT}/healthz" || exit 1
ENTRYPOINT ["huizhen"]
CMD ["serve"]

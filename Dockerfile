# Kassa in a container: `docker build -t kassa .`, then
#   docker run -p 8000:8000 -v kassa-data:/var/lib/kassa kassa                  (SQLite, worker inside)
#   docker run -e KASSA_DATABASE_URL=postgresql+asyncpg://... -e KASSA_SECRET_KEY_FILE=/run/secrets/kassa_key \
#       kassa serve --no-worker --host 0.0.0.0 --port 8000                      (API only)
#   docker run -e KASSA_DATABASE_URL=... kassa worker                           (a worker)
# See docs/production.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --user-group --uid 10001 --home-dir /var/lib/kassa --create-home \
        --shell /usr/sbin/nologin kassa

WORKDIR /opt/kassa
COPY pyproject.toml README.md ./
COPY src ./src
# With the Redis client: several containers behind one proxy can share their rate-limit counts.
RUN pip install ".[redis]" && rm -rf /opt/kassa/src

USER kassa
WORKDIR /var/lib/kassa
# SQLite file and generated server key when nothing else is configured; mount a volume here.
VOLUME ["/var/lib/kassa"]
EXPOSE 8000

ENTRYPOINT ["kassa"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

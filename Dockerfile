# streamdrift service image. Build from the repository root: `docker build -t streamdrift .`
# (docker-compose.yml does this for the `streamdrift` and `demo-producer` services).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# The service runs as an unprivileged user; nothing under /app needs to be writable at run time.
RUN groupadd --system --gid 10001 streamdrift \
    && useradd --system --uid 10001 --gid streamdrift --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin streamdrift

# Only what the package build needs (README.md is the project's `readme` in pyproject.toml), then the
# configs the container runs with. kafka-python's extras come with it: crc32c (fast CRC checks) and the
# snappy, lz4 and zstd codecs (every compression a producer may use). The confluent extra brings the second
# transport (librdkafka, in confluent-kafka's wheel), so `kafka.client: confluent` works in the image too.
COPY pyproject.toml README.md ./
COPY streamdrift/ ./streamdrift/
RUN pip install --no-cache-dir '.[confluent]' \
    && rm -rf build ./*.egg-info
COPY configs/ ./configs/

USER streamdrift

# /metrics, /healthz and /readyz (configs/docker.yaml listens on 0.0.0.0:9308).
EXPOSE 9308

# No ENTRYPOINT: `docker run <image> streamdrift demo produce ...` replaces the command as a whole.
CMD ["streamdrift", "run", "--config", "/app/configs/docker.yaml"]

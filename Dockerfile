# The app image: one image, two roles. docker-compose.yml runs it as `enroll worker` and `enroll api`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENROLL_DATA_DIR=/var/lib/enroll \
    ENROLL_API_HOST=0.0.0.0

RUN groupadd --system --gid 10001 enroll \
    && useradd --system --uid 10001 --gid enroll --no-create-home --shell /usr/sbin/nologin enroll \
    && install --directory --owner enroll --group enroll /var/lib/enroll

WORKDIR /src
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY credentials ./credentials
COPY webhooks ./webhooks
COPY store ./store
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY observability ./observability
COPY worker.py ./
RUN pip install --no-cache-dir . \
    && rm -rf /src

WORKDIR /var/lib/enroll
USER enroll
EXPOSE 8000
CMD ["enroll", "api"]

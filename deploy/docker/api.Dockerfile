# syntax=docker/dockerfile:1
# landscope API image: Flask under gunicorn, WITHOUT torch (the API never imports it).
# Build from the repository root (the context is the whole checkout; api.Dockerfile.dockerignore
# beside this file keeps the context to what the image needs):
#
#   docker build -f deploy/docker/api.Dockerfile -t landscope-api:0.1.0 .
#
# Versions are exact pins (deploy/docker/api-requirements.txt, regenerated with
# deploy/docker/pin_requirements.py); the package itself goes in with --no-deps so
# nothing unpinned (torch above all) comes along.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY deploy/docker/api-requirements.txt /tmp/api-requirements.txt
RUN pip install --upgrade pip==25.3 setuptools==84.2.1 \
 && pip install -r /tmp/api-requirements.txt \
 && pip check
COPY pyproject.toml README.md /src/
COPY client /src/client
COPY service /src/service
# --no-build-isolation: build with the pinned setuptools above, not whatever is newest.
RUN pip install --no-deps --no-build-isolation /src \
 && python -c "import sys, landscope_service.api; assert 'torch' not in sys.modules"

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 landscope \
 && useradd --system --uid 10001 --gid landscope --home-dir /home/landscope --create-home \
      --shell /usr/sbin/nologin landscope \
 && mkdir -p /data \
 && chown landscope:landscope /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANDSCOPE_DATA_DIR=/data
WORKDIR /home/landscope
USER 10001:10001
EXPOSE 8000
# The container always listens on 8000; publish it on any host port you like.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["landscope-service"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]

# syntax=docker/dockerfile:1
# landscope worker image: Celery + torch. torch is the PyPI wheel of the pinned release,
# a CUDA build (its nvidia-* runtime libraries are pinned exactly by torch's own
# metadata); it runs on CPU as well, so the same image serves the cpu and gpu queues.
# The GPU driver comes from the host through the NVIDIA Container Toolkit. The image does
# not set NVIDIA_VISIBLE_DEVICES: the GPUs a container sees are those its compose device
# reservation or Kubernetes nvidia.com/gpu limit gives it, and a CPU worker sees none.
# Build from the repository root:
#
#   docker build -f deploy/docker/worker.Dockerfile -t landscope-worker:0.1.0 .
#
# For a host whose driver is older than the default wheel's CUDA needs, take the same
# torch release built for an older CUDA from PyTorch's own index, e.g.:
#
#   docker build -f deploy/docker/worker.Dockerfile -t landscope-worker:0.1.0 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .

FROM python:3.11.11-slim-bookworm AS build
ARG TORCH_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY deploy/docker/worker-requirements.txt /tmp/worker-requirements.txt
# torch first (optionally from another index, same pinned version), then everything else.
RUN pip install --upgrade pip==25.3 setuptools==84.2.1 \
 && TORCH_PIN="$(grep -E '^torch==' /tmp/worker-requirements.txt)" \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple "$TORCH_PIN"; \
    else \
      pip install "$TORCH_PIN"; \
    fi \
 && pip install -r /tmp/worker-requirements.txt \
 && pip check
COPY pyproject.toml README.md /src/
COPY client /src/client
COPY service /src/service
RUN pip install --no-deps --no-build-isolation /src \
 && python -c "import landscope_service.worker.tasks"

FROM python:3.11.11-slim-bookworm
RUN groupadd --system --gid 10001 landscope \
 && useradd --system --uid 10001 --gid landscope --home-dir /home/landscope --create-home \
      --shell /usr/sbin/nologin landscope \
 && mkdir -p /data \
 && chown landscope:landscope /data
COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/worker-entrypoint.sh /usr/local/bin/landscope-worker
COPY --chmod=0755 deploy/docker/worker_healthcheck.py /usr/local/bin/landscope-worker-healthcheck
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANDSCOPE_DATA_DIR=/data \
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /home/landscope
USER 10001:10001
# Healthy when every worker process this container started has a live heartbeat
# (ls:worker:<name>@<host>) in Redis; torch's import makes the start slow.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD ["landscope-worker-healthcheck"]
# Configured by WORKER_QUEUES, WORKER_NAME, WORKER_POOL, WORKER_CONCURRENCY, GPU_IDS:
# see deploy/docker/worker-entrypoint.sh.
ENTRYPOINT ["landscope-worker"]

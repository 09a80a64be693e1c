# syntax=docker/dockerfile:1
# Production image: the API (`photoduel serve`) or a worker (`photoduel worker`), same image.
# Build: docker build --build-arg TORCH_INDEX_URL=<PyTorch CPU or CUDA wheel index> -t photoduel .
# Without TORCH_INDEX_URL pip takes torch==2.13.0 from PyPI (a CUDA build on x86_64: larger image).

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY accounts ./accounts
COPY api ./api
COPY ml ./ml
COPY gaming ./gaming
COPY storage ./storage
COPY notifications ./notifications
COPY photoduel ./photoduel
COPY photos ./photos
RUN pip install --upgrade pip \
 && if [ -n "$TORCH_INDEX_URL" ]; then pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0; fi \
 && pip install .
# No `embedded` extra: production talks to a real MongoDB (PHOTODUEL_MONGODB_URI).

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --uid 10001 photoduel
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PHOTODUEL_ENV=prod \
    PHOTODUEL_HOST=0.0.0.0 \
    PHOTODUEL_PORT=8000 \
    PHOTODUEL_DATA_DIR=/data \
    HF_HOME=/data/hf
RUN mkdir -p /data && chown photoduel /data
USER photoduel
WORKDIR /home/photoduel
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PHOTODUEL_PORT}/healthz" || exit 1
ENTRYPOINT ["photoduel"]
CMD ["serve"]

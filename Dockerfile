# t2f bot for a CUDA GPU host. Run it with compose.yaml (`docker compose up -d`) or
# `docker run --gpus all --env-file .env -v t2f-data:/data -p 8080:8080 t2f`.
# The host needs the NVIDIA driver 580 or newer and the NVIDIA Container Toolkit: torch 2.13.0 from
# PyPI carries its own CUDA 13.0 runtime (its wheel requires cuda-toolkit 13.0.3), so a slim Python
# base is enough, and CUDA 13.x runs on driver branch 580 and later.
FROM python:3.11-slim-bookworm

# g++ only on request (docker build --build-arg WITH_COMPILER=1): T2F_COMPILE=on needs a C/C++
# compiler for Triton's kernel launcher and inductor's C++ code; nothing else does.
ARG WITH_COMPILER=0

# The paths live on the /data volume. .env.example sets none of them (every setting there is a
# comment), so `--env-file .env` does not move them; an operator's own .env should not either.
# The web server (3D pages, /healthz) listens on every interface of the container, so the published
# port 8080 reaches it. /metrics is served on a port of its own, 9464, which is neither exposed nor
# published: a Prometheus on the same Docker network scrapes t2f:9464 (set T2F_METRICS_TOKEN to ask it
# for a bearer token), and publishing it is the operator's choice (compose.yaml says how).
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    T2F_OUTPUT_DIR=/data/outputs \
    T2F_DB_PATH=/data/t2f.sqlite3 \
    T2F_WEB_PORT=8080 \
    T2F_WEB_HOST=0.0.0.0 \
    T2F_METRICS_PORT=9464 \
    T2F_METRICS_HOST=0.0.0.0

# tini is PID 1 (the ENTRYPOINT below): a shell there ignores SIGTERM, so `docker stop` waited out the
# grace period and killed the bot mid-batch, and nothing reaped the processes the libraries leave behind.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && if [ "$WITH_COMPILER" = "1" ]; then \
        apt-get install -y --no-install-recommends g++; \
    fi \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 t2f \
    && mkdir -p /data/hf /data/outputs \
    && chown -R t2f:t2f /data

WORKDIR /app
# Dependencies first, so code edits do not reinstall PyTorch. torch is pinned: on Linux x86-64 PyPI
# serves the CUDA build of 2.13.0.
COPY pyproject.toml README.md ./
RUN pip install torch==2.13.0
COPY t2f ./t2f
COPY cogs ./cogs
COPY bot.py ./
RUN pip install .

USER 1000
# Model weights (several GB: the hub cache in /data/hf/hub, PRNet in /data/hf/t2f/prnet), results
# and the SQLite database live on a volume, not in the image.
VOLUME ["/data"]
EXPOSE 8080
# The bot's web server answers /healthz on T2F_WEB_PORT once it runs. The first start downloads
# about 5 GB and warms the models up, hence the long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15m --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('T2F_WEB_PORT', '8080'), timeout=4)"]
# The 3D viewer is fetched first (9.4 MB, a no-op once on the volume) so that the check finds it; then
# settings, files, device, the viewer and the token (asked of Discord) are checked before the weights are
# fetched on the first start (about 5 GB, a no-op once cached); then the shell execs the bot. tini -g
# passes SIGTERM to the whole process group: a download stops, and the bot drains (up to 30 s for the
# running batch plus 15 s for deliveries). tests/test_docker_start.py runs this command with this ENV.
ENTRYPOINT ["tini", "-g", "--"]
CMD ["sh", "-c", "t2f web-assets && python bot.py --check-config && t2f download && exec python bot.py"]

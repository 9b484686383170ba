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
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    T2F_OUTPUT_DIR=/data/outputs \
    T2F_DB_PATH=/data/t2f.sqlite3 \
    T2F_WEB_PORT=8080

# hadolint ignore=DL3008
RUN if [ "$WITH_COMPILER" = "1" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends g++ \
        && rm -rf /var/lib/apt/lists/*; \
    fi

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
# Settings, files, device and the token (asked of Discord) are checked first, weights are fetched on
# the first start (a no-op once cached), then the bot runs as PID 1's exec'd process, so SIGTERM
# reaches it and it drains (up to 30 s for the running batch plus 15 s for deliveries).
CMD ["sh", "-c", "python bot.py --check-config && t2f download && exec python bot.py"]

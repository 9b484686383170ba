# t2f bot for a CUDA GPU host (run with the NVIDIA container toolkit: `docker run --gpus all ...`).
# PyTorch's CUDA wheels from PyPI carry their own CUDA runtime, so a slim Python base is enough;
# the host needs only the NVIDIA driver.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    T2F_CACHE_DIR=/data/models \
    T2F_OUTPUT_DIR=/data/outputs \
    T2F_DB_PATH=/data/t2f.sqlite3 \
    HF_HOME=/data/hf

# torch.compile (T2F_COMPILE=true) builds Triton's kernel launcher and inductor's C++ with the system compiler.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 t2f \
    && mkdir -p /data/models /data/outputs /data/hf \
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

USER t2f
# Model weights (several GB) and results live on a volume, not in the image.
VOLUME ["/data"]
# The token is checked, weights are fetched on first start (a no-op once cached), then the bot runs.
CMD ["sh", "-c", "python bot.py --check-config && t2f download && exec python bot.py"]

"""A warm restart as the bot does one, for bench/gpu.py: this process is started with the run's ``T2F_*``
settings in its environment (its compile cache filled by the run), reads them, loads every model from disk
with ``t2f.build``, and runs the start-up warm-up on the job service's GPU thread. It prints one JSON line:
the seconds to its imports, to its models, of the warm-up, what the compile cache served, and the warm-up's
own log line. The parent times the whole process, from its start to that line.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the imports: they are part of a restart

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_setup import counters_now, since  # noqa: E402

from t2f.build import job_service, load_stages, local_route, warm_up_call  # noqa: E402
from t2f.config import settings_from_mapping  # noqa: E402


class LastLine(logging.Handler):
    """Keeps the last message logged to it (the warm-up's line: where its time went)."""

    said = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.said = record.getMessage()


def main() -> None:
    imported = time.perf_counter()
    settings = settings_from_mapping(os.environ)
    stages = load_stages(settings)
    loaded = time.perf_counter()
    service = job_service(settings, local_route(settings, stages))
    line = LastLine()
    logging.getLogger("t2f.serve.warmup").addHandler(line)
    logging.getLogger("t2f.serve.warmup").setLevel(logging.INFO)
    before = counters_now()
    warm_up_s = asyncio.run(service.warm_up(warm_up_call(settings, stages)))
    grown = since(before)
    cache = stages.painter.text_to_image.compile_cache
    said = {
        "imports_s": imported - STARTED,
        "load_s": loaded - imported,
        "seconds": warm_up_s,
        "ready_s": time.perf_counter() - STARTED,
        "hits": grown["hits"],
        "misses": grown["misses"],
        "skips": grown["skips"],
        "files_before": 0 if cache is None else cache.files_before,
        "line": line.said,
    }
    print(json.dumps(said), flush=True)
    service.gpu.shutdown()


if __name__ == "__main__":
    main()

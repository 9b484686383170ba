"""The whole route for one batch on the calling thread, without the service: the baseline the benches
compare the service with (every face found and its files written before the next batch), and the tests'
way to run the stages in order."""

from __future__ import annotations

from collections.abc import Sequence

from t2f.serve.jobs import FaceJob, Outcome, Stage
from t2f.serve.route import Watch
from t2f.serve.warmup import LocalStages


def through_route(stages: LocalStages, jobs: Sequence[FaceJob], watch: Watch) -> list[Outcome]:
    """Paint ``jobs`` in one loop, then find each face and write its files in turn, on this thread.

    Returns one outcome per job, in order: its final result, or the job to paint again (a repaint).
    """
    ended: list[Outcome] = []
    for outcome in stages.painter.paint(jobs, watch):
        if isinstance(outcome, FaceJob) and outcome.next_stage is Stage.FACES:
            outcome = stages.faces.find(outcome, watch)
        if isinstance(outcome, FaceJob) and outcome.next_stage is Stage.FILES:
            outcome = stages.files.write(outcome)
        ended.append(outcome)
    return ended

"""Running the pipeline in this process for the worker tests (their cases: tests.factories.uploaded_case)."""

from __future__ import annotations

from diagnostics.models import Case


def run_case_inline(case: Case) -> list[int]:
    """The pipeline functions in this process, in the order the tasks would run them; returns the Analysis ids."""
    from diagnostics import pipeline

    pipeline.start_case(case.pk)
    analysed: list[int] = []
    for chunk in pipeline.dispatch_queued_images(case.pk):
        pipeline.classify_chunk(chunk, on_analysed=analysed.append)
    for analysis_id in analysed:
        pipeline.segment_image(analysis_id)
    case.refresh_from_db()
    return analysed

"""Running the pipeline in this process for the worker tests (their cases: tests.factories.uploaded_case)."""

from __future__ import annotations

from diagnostics.models import Case


def run_case_inline(case: Case) -> list[int]:
    """The pipeline functions in this process, in the order the tasks would run them; returns the Analysis ids."""
    from diagnostics import pipeline

    analysed = pipeline.run_case_in_process(case.pk)
    case.refresh_from_db()
    return analysed

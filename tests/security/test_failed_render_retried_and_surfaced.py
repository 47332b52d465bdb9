"""A final report render that fails is tried again, and while the report is
missing the case's reports panel tells the lab so, with the error.

The failure is injected into the PDF renderer (the one part patched): a
real xhtml2pdf cannot be made to fail on demand."""

from __future__ import annotations

from unittest import mock

from django.urls import reverse

from diagnostics.models import TaskRun
from reports import services as report_service
from reports.models import Report
from reports.rendering import render_report_pdf
from reports.tasks import RENDER_RETRIES, render_final_report
from tests.base import BaseTestCase
from tests.factories import analysed_case, record_sign_out, review_case

RENDERER = "reports.services.render_report_pdf"


class FailedRenderTests(BaseTestCase):
    def signed_case(self):
        built = analysed_case(self.lab, drawn=True, labels=["Pre", "Pro"])
        review_case(built, self.pathologist)
        signed = record_sign_out(built, self.pathologist)
        return built.case, signed

    def test_a_render_that_fails_once_is_retried_and_the_report_is_made(self):
        case, _ = self.signed_case()
        calls = {"n": 0}

        def flaky(content):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("renderer crashed")
            return render_report_pdf(content)

        with mock.patch(RENDERER, side_effect=flaky):
            render_final_report.apply(args=[case.pk, self.pathologist.pk, case.sign_out_version])
        self.assertEqual(calls["n"], 2)
        self.assertTrue(Report.objects.filter(case=case, status="final").exists())
        self.assertIsNone(report_service.missing_final_report(case))

    def test_a_render_that_keeps_failing_is_surfaced_on_the_case(self):
        case, _ = self.signed_case()
        with mock.patch(RENDERER, side_effect=RuntimeError("renderer crashed")) as renderer:
            result = render_final_report.apply(args=[case.pk, self.pathologist.pk, case.sign_out_version])
        self.assertEqual(renderer.call_count, RENDER_RETRIES + 1)
        self.assertTrue(result.failed())
        self.assertEqual(TaskRun.objects.filter(case=case, task_name="render_final_report", ok=False).count(),
                         RENDER_RETRIES + 1)
        missing = report_service.missing_final_report(case)
        self.assertIn("renderer crashed", missing.error)
        self.client.force_login(self.technician)  # any member of the lab sees it
        panel = self.client.get(reverse("case_reports_panel", args=[case.pk]))
        self.assertContains(panel, f"The final report of sign-out v{case.sign_out_version} is not made yet")
        self.assertContains(panel, "renderer crashed")

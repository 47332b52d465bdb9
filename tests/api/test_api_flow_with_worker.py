"""The whole API flow over real HTTP with a real Celery worker process,
PostgreSQL and Redis, as a lab information system would drive it:

create a case with images -> add a zip of images -> poll progress until the
case awaits review -> fetch per-image results and overlay files -> fetch the
summary -> request a draft report -> (a pathologist reviews and signs out on
the site with TOTP) -> download the final report rendered by the worker.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile

import pytest
import requests
from django.core.management import call_command
from django.test import Client, LiveServerTestCase, override_settings

from diagnostics.models import Analysis, Case, CaseStatus, ImageStatus
from reports.models import Report, ReportStatus
from review import services as review_service
from tests.base import MediaRootMixin, _Users
from tests.imagefactory import smear_bytes
from tests.modelfixtures import register_test_model
from tests.review.helpers import activate_totp, post_sign_out
from tests.workerproc import purge_broker, require_services, run_worker

TIMEOUT_S = 240


@pytest.mark.services
@pytest.mark.slow
@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class ApiFlowWithWorkerTests(MediaRootMixin, _Users, LiveServerTestCase):
    def setUp(self) -> None:
        require_services()
        super().setUp()
        self.make_users()
        purge_broker()
        register_test_model()
        out = io.StringIO()
        call_command("api_token", self.technician.email, stdout=out)  # the LIS service account's token
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {out.getvalue().strip()}"

    def api(self, path: str) -> str:
        return f"{self.live_server_url}{path}"

    def wait_for(self, url: str, done, what: str):
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            response = self.http.get(url, timeout=30)
            if done(response):
                return response
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} not reached in {TIMEOUT_S} s: {response.status_code} {response.text[:500]}"
                )
            time.sleep(1.0)

    def test_create_upload_wait_results_and_reports(self) -> None:
        started = time.monotonic()
        with run_worker(queues=("gpu", "cpu", "priority"), pool="solo") as worker:
            # 1. A new case with two images and one corrupt file.
            files = [
                ("files", ("field-1.png", smear_bytes(1), "image/png")),
                ("files", ("field-2.png", smear_bytes(2), "image/png")),
                ("files", ("broken.png", smear_bytes(3)[:100], "image/png")),
            ]
            fields = {
                "accession_number": "LIS-0001",
                "patient_pseudonym": "P-LIS-1",
                "specimen": "bone_marrow_aspirate",
            }
            response = self.http.post(self.api("/api/cases/"), data=fields, files=files, timeout=60)
            self.assertEqual(response.status_code, 201, response.text)
            created = response.json()
            case_id = created["case"]["id"]
            self.assertEqual(len(created["batch"]["accepted"]), 2)
            self.assertEqual([r["code"] for r in created["batch"]["rejected"]], ["truncated"])

            # 2. More images as a zip.
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                archive.writestr("more/field-4.png", smear_bytes(4))
                archive.writestr("more/field-5.png", smear_bytes(5))
            response = self.http.post(
                self.api(f"/api/cases/{case_id}/images/"),
                files=[("files", ("more.zip", buffer.getvalue(), "application/zip"))],
                timeout=60,
            )
            self.assertEqual(response.status_code, 201, response.text)
            self.assertEqual([image["position"] for image in response.json()["accepted"]], [3, 4])

            # 3. Poll progress until the worker has finished every image.
            progress = self.wait_for(
                self.api(f"/api/cases/{case_id}/progress/"),
                lambda r: r.json()["status"] in ("awaiting_review", "failed"),
                "awaiting review",
            ).json()
            self.assertEqual(progress["status"], "awaiting_review", progress)
            self.assertEqual((progress["total"], progress["done"], progress["failed"]), (4, 4, 0))

            # 4. Per-image results, each analysed exactly once, with its overlay files.
            images = self.http.get(self.api(f"/api/cases/{case_id}/images/"), timeout=30).json()["results"]
            self.assertEqual(len(images), 4)
            for image in images:
                self.assertEqual(image["status"], ImageStatus.DONE)
                analysis = image["analysis"]
                self.assertIn(analysis["label"], analysis["probabilities"])
                self.assertAlmostEqual(sum(analysis["probabilities"].values()), 1.0, places=3)
                self.assertIn("wbc", analysis["cell_counts"])
                for kind in ("original", "cam", "segmentation"):
                    served = self.http.get(image["files"][kind], timeout=30)
                    self.assertEqual(served.status_code, 200, (kind, served.text[:200]))
                    self.assertTrue(served.content.startswith(b"\x89PNG") or kind == "original", kind)
                original = self.http.get(image["files"]["original"], timeout=30).content
                self.assertEqual(hashlib.sha256(original).hexdigest(), image["sha256"])
            self.assertEqual(Analysis.objects.filter(image__case_id=case_id).count(), 4)

            # 5. The case summary agrees with the images.
            summary = self.http.get(self.api(f"/api/cases/{case_id}/summary/"), timeout=30).json()
            self.assertEqual((summary["images"], summary["analysed"]), (4, 4))
            self.assertEqual(sum(summary["per_class"].values()), 4)
            self.assertTrue(summary["demo"])

            # 6. A draft report on request (rendered by the worker: the PDF at once, or a
            # status to poll); no final report before sign-out.
            draft = self.http.post(self.api(f"/api/cases/{case_id}/report/draft/"), timeout=120)
            self.assertIn(draft.status_code, (201, 202), draft.text[:300])
            if draft.status_code == 202:
                status_url = draft.json()["status_url"]
                deadline = time.monotonic() + 120
                while draft.status_code == 202 and time.monotonic() < deadline:
                    time.sleep(0.5)
                    draft = self.http.get(status_url, timeout=30)
                self.assertEqual(draft.status_code, 200, draft.text[:300])
            self.assertTrue(draft.content.startswith(b"%PDF-"))
            self.assertEqual(draft.headers["X-Report-Status"], "draft")
            self.assertEqual(
                self.http.get(self.api(f"/api/cases/{case_id}/report/"), timeout=30).json()["error"]["code"],
                "no_report",
            )

            # 7. A pathologist reviews every image and signs out on the site, with TOTP.
            for image in images:
                review_service.record_review(
                    image=Analysis.objects.get(image_id=image["id"]).image,
                    reviewer=self.pathologist,
                    label=image["analysis"]["label"],
                    submission_token=review_service.new_submission_token(),
                )
            site = Client()
            secret = activate_totp(self.pathologist)
            site.force_login(self.pathologist)
            response = post_sign_out(site, Case.objects.get(pk=case_id), secret, diagnosis="insufficient",
                                     comment="Too few cells per field.")
            self.assertEqual(response.status_code, 302, response.content[:2000])
            self.assertEqual(
                self.http.get(self.api(f"/api/cases/{case_id}/"), timeout=30).json()["status"], CaseStatus.SIGNED_OUT
            )
            # The signed result is the result; the AI's figures stay beside it.
            summary = self.http.get(self.api(f"/api/cases/{case_id}/summary/"), timeout=30).json()
            self.assertEqual(summary["result"], "signed")
            self.assertEqual((summary["signed"]["diagnosis"], summary["signed"]["comment"]),
                             ("insufficient", "Too few cells per field."))
            self.assertEqual(summary["signed"]["per_class"], summary["per_class"])  # every AI label confirmed
            listed = self.http.get(self.api(f"/api/cases/{case_id}/images/"), timeout=30).json()["results"]
            self.assertEqual([i["signed_label"] for i in listed], [i["ai_label"] for i in listed])

            # 8. The worker renders the final report; the LIS downloads it.
            report = self.wait_for(
                self.api(f"/api/cases/{case_id}/report/"), lambda r: r.status_code == 200, "the final report"
            )
            self.assertEqual(report.headers["Content-Type"], "application/pdf")
            self.assertEqual(report.headers["X-Report-Status"], "final")
            stored = Report.objects.get(pk=report.headers["X-Report-Id"])
            self.assertEqual(stored.status, ReportStatus.FINAL)
            self.assertEqual(hashlib.sha256(report.content).hexdigest(), stored.sha256)
            self.assertTrue(worker.alive())
        print(f"API flow with a real worker: {time.monotonic() - started:.1f} s")

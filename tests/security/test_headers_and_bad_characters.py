"""Security headers and characters a database cannot store.

* Content-Security-Policy (django-csp): scripts from this site only; no page
  carries an inline script or an htmx ``hx-on`` handler (they need eval).
* ``Cache-Control: no-store`` on pages and files with patient data.
* A NUL byte (or an unpaired surrogate) in a query, form or JSON body is a 400
  with a reason, not a 500 from PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from django.contrib.staticfiles import finders
from django.urls import reverse

from diagnostics.models import Case, SlideImage
from tests.api.helpers import ApiTestCase
from tests.diagnostics.upload_helpers import case_fields, png_upload
from tests.factories import CellFactory
from tests.imagefactory import png_bytes

BOUNDARY = "mfBoundary"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


class ContentSecurityPolicyTests(ApiTestCase):
    def test_scripts_from_this_site_only(self):
        response = self.client.get(reverse("account_login"))
        policy = response["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        self.assertEqual(directives["script-src"], "'self'")
        self.assertEqual(directives["default-src"], "'self'")
        self.assertEqual(directives["frame-ancestors"], "'none'")
        self.assertNotIn("unsafe-eval", policy)

    def test_pages_carry_no_inline_script(self):
        login_page = self.client.get(reverse("account_login")).content.decode()
        self.assertEqual(INLINE_SCRIPT.findall(login_page), [])
        case, _ = self.make_analysed_case()
        self.client.force_login(self.pathologist)
        pages = [reverse("worklist"), reverse("case_detail", args=[case.pk]),
                 reverse("assistant"), reverse("api-docs")]
        for url in pages:
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 200)
                html = response.content.decode()
                self.assertEqual(INLINE_SCRIPT.findall(html), [])
                self.assertNotIn("hx-on", html)
                self.assertNotIn("javascript:", html)

    def test_only_the_empty_inline_style_element_is_allowed(self):
        policy = self.client.get(reverse("account_login"))["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        empty = base64.b64encode(hashlib.sha256(b"").digest()).decode()
        self.assertEqual(directives["style-src-elem"], f"'self' 'sha256-{empty}'")
        self.assertEqual(directives["style-src"], "'self'")

    def test_the_viewer_carries_no_inline_script_and_hosts_openseadragon_itself(self):
        from diagnostics import tiles

        case, made = self.make_analysed_case()
        image, analysis = made[0]
        tiles.make_tiles(analysis.pk)
        CellFactory(analysis=analysis, index=1, contour=[[1, 1], [9, 1], [9, 9]], ai_label="blast")
        self.client.force_login(self.pathologist)
        response = self.client.get(reverse("image_viewer", args=[case.pk, image.pk]))
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertEqual(INLINE_SCRIPT.findall(html), [])
        scripts = re.findall(r'<script src="([^"]+)"', html)
        self.assertIn("/static/vendor/openseadragon-6.1.1/openseadragon.min.js", scripts)
        self.assertTrue(all(src.startswith("/static/") for src in scripts), scripts)
        prefix = re.search(r'data-prefix-url="([^"]+)"', html).group(1)
        self.assertEqual(prefix, "/static/vendor/openseadragon-6.1.1/images/")
        self.assertTrue(finders.find("vendor/openseadragon-6.1.1/images/zoomin_rest.png"))
        self.assertIn("&quot;label&quot;:&quot;blast&quot;", re.search(r'data-cells="([^"]*)"', html).group(1))

    def test_the_api_docs_init_script_is_a_file_of_its_own(self):
        html = self.client.get(reverse("api-docs")).content.decode()
        script = re.search(r'<script src="([^"]*script=[^"]*)"', html).group(1).replace("&amp;", "&")
        response = self.client.get(script)
        self.assertEqual(response.status_code, 200)
        self.assertIn("SwaggerUIBundle", response.content.decode())


class NoStoreTests(ApiTestCase):
    def test_pages_and_files_with_patient_data_are_not_stored(self):
        case, made = self.make_analysed_case()
        self.client.force_login(self.pathologist)
        analysis = made[0][1]
        urls = [reverse("case_detail", args=[case.pk]), reverse("worklist"), analysis.cam_overlay.url,
                reverse("api-case-detail", args=[case.pk])]
        for url in urls:
            with self.subTest(url=url):
                response = self.client.get(url)
                self.assertEqual(response.status_code, 200)
                self.assertEqual(response["Cache-Control"], "no-store")
        self.assertEqual(self.api.get(reverse("api-cases"))["Cache-Control"], "no-store")


class UnstorableCharacterTests(ApiTestCase):
    def assertRefused(self, response, field):
        error = self.assertApiError(response, 400, "invalid_character")
        self.assertEqual(error["details"], {"field": field})
        self.assertIn("NUL", error["message"])

    def test_nul_in_api_query_filters(self):
        for query in ("accession_number=%00", "lab=%00", "accession_number=BM%00-1"):
            with self.subTest(query=query):
                self.assertRefused(self.api.get(reverse("api-cases") + "?" + query), query.split("=")[0])

    def test_nul_in_a_json_body(self):
        body = json.dumps({"accession_number": "BM-1\u0000", "specimen": "marrow"})
        self.assertRefused(self.api.post(reverse("api-cases"), body, content_type="application/json"),
                           "accession_number")

    def test_an_unpaired_surrogate_in_a_json_body(self):
        body = '{"accession_number": "BM-\\ud800"}'
        error = self.assertApiError(self.api.post(reverse("api-cases"), body, content_type="application/json"),
                                    400, "invalid_character")
        self.assertIn("surrogate", error["message"])

    def test_nul_in_an_assistant_question_is_a_page_with_the_reason(self):
        self.client.force_login(self.pathologist)
        response = self.client.post(reverse("assistant_ask"), {"question": "how many blasts\x00"})
        self.assertEqual(response.status_code, 400)
        self.assertContains(response, "The field &#x27;question&#x27; contains a NUL character", status_code=400)

    def test_nul_in_a_page_query(self):
        self.client.force_login(self.pathologist)
        response = self.client.get(reverse("worklist") + "?q=%00")
        self.assertContains(response, "contains a NUL character", status_code=400)

    def test_nul_in_api_form_fields(self):
        # The API's multipart fields are parsed by DRF: each is refused with its field named,
        # the lab slug before it is looked up (PostgreSQL cannot compare text with a NUL: a 500).
        for field in ("accession_number", "patient_pseudonym", "clinical_note", "lab"):
            with self.subTest(field=field):
                fields = {**case_fields(), field: "BM\x00-1", "files": [png_upload("a.png", seed=1)]}
                error = self.assertApiError(self.api.post(reverse("api-cases"), fields, format="multipart"), 400, "invalid")
                self.assertEqual(list(error["details"]), [field])
                self.assertRegex(str(error["details"][field]), "(?i)null|NUL")
        self.assertFalse(Case.objects.exists())

    def test_nul_in_a_web_upload_form_is_a_page_with_the_reason(self):
        self.client.force_login(self.technician)
        fields = {**case_fields(accession_number="BM\x00-1"), "lab": self.lab.pk, "files": [png_upload("a.png", seed=1)]}
        response = self.client.post(reverse("case_new"), fields)
        self.assertContains(response, "The field &#x27;accession_number&#x27; contains a NUL character", status_code=400)
        self.assertFalse(Case.objects.exists())

    def test_nul_in_an_uploaded_file_name_is_dropped_not_stored(self):
        def body(fields: dict) -> bytes:
            # Written by hand: the test client would not send a NUL in a file name; a script can.
            parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                     for name, value in fields.items()]
            parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="smear\x00one.png"'
                         "\r\nContent-Type: image/png\r\n\r\n".encode() + png_bytes(seed=1) + b"\r\n")
            return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()

        multipart = f"multipart/form-data; boundary={BOUNDARY}"
        self.client.force_login(self.technician)
        web = self.client.generic("POST", reverse("case_new"), body({**case_fields(), "lab": self.lab.pk}), content_type=multipart)
        self.assertEqual(web.status_code, 302, web.content[:300])
        api = self.api.generic("POST", reverse("api-cases"), body(case_fields(accession_number="BM-2")), content_type=multipart)
        self.assertEqual(api.status_code, 201, api.content[:300])
        # Django's parser keeps only the printable characters of a file name.
        self.assertEqual(sorted(SlideImage.objects.values_list("original_filename", flat=True)),
                         ["smearone.png", "smearone.png"])

    def test_ordinary_text_passes(self):
        self.assertEqual(self.api.get(reverse("api-cases") + "?accession_number=BM-%C3%A9").status_code, 200)

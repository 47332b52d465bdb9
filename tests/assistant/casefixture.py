"""One analysed case of lab A for the assistant tests, built from real rows
(tests/reports/builders: real image files, real segmentation counts, real
overlays), with its expected numbers computed here from those rows."""

from __future__ import annotations

from diagnostics.models import Role
from tests.factories import LabFactory, MembershipFactory, UserFactory
from tests.reports.builders import build_case, review

LABELS = ["Benign", "Pre", "Early", "Pro", "Pro", "Pre"]
CONFIDENCES = [0.95, 0.55, 0.83, 0.9, 0.91, 0.7]
BLASTS = [0, None, 2, 3, 1, None]
FAILED = (6,)
REVIEWED = {1: "Benign", 3: "Early", 4: "Pre"}  # image 4: the reviewer overrides Pro-B -> Pre-B


def build_assistant_case(test_class) -> None:
    """For ``setUpTestData``: lab A's case with 6 images, 3 of them reviewed, 1 failed."""
    lab = LabFactory(name="Lab A", slug="lab-a")
    reviewer = UserFactory(username="assistant-reviewer", email="rev@lab-a.org")
    MembershipFactory(user=reviewer, lab=lab, role=Role.PATHOLOGIST)
    built = build_case(lab, labels=LABELS, confidences=CONFIDENCES, blasts=BLASTS, failed=FAILED,
                       clinical_note="Confidential: 6-year-old with bruising")
    review(built, reviewer, REVIEWED, only=REVIEWED)
    test_class.built = built
    test_class.case = built.case

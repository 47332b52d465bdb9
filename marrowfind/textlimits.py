"""Length limits of every free-text field people type, one message everywhere.

The web forms and the API check the same limit with the same validator, so a
lab information system and a technician read the same sentence. The limits
keep every case that passes validation within the report's render limit (a
300 KB note once made the PDF render run past its time limit).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

CLINICAL_NOTE_CHARS = 5_000
REVIEW_COMMENT_CHARS = 2_000
AMENDMENT_REASON_CHARS = 2_000
DIAGNOSIS_COMMENT_CHARS = 4_000
FURTHER_STUDIES_CHARS = 200
CREDENTIALS_CHARS = 120
ACCESSION_NUMBER_CHARS = 64
PSEUDONYM_CHARS = 64
STAIN_CHARS = 64


def too_long_message(label: str, length: int, limit: int) -> str:
    return f"{label} is {length:,} characters long; the limit is {limit:,} characters."


@deconstructible
class TextLimit:
    """A validator for Django forms and DRF serializers alike (DRF runs Django validators)."""

    code = "too_long"

    def __init__(self, label: str, limit: int) -> None:
        self.label = label
        self.limit = limit

    def __call__(self, value) -> None:
        if value is not None and len(str(value)) > self.limit:
            raise ValidationError(too_long_message(self.label, len(str(value)), self.limit), code=self.code)

    def __eq__(self, other) -> bool:
        return isinstance(other, TextLimit) and (self.label, self.limit) == (other.label, other.limit)


clinical_note = TextLimit("The clinical note", CLINICAL_NOTE_CHARS)
review_comment = TextLimit("The comment", REVIEW_COMMENT_CHARS)
amendment_reason = TextLimit("The reason", AMENDMENT_REASON_CHARS)
diagnosis_comment = TextLimit("The diagnostic comment", DIAGNOSIS_COMMENT_CHARS)
further_studies = TextLimit("The further studies", FURTHER_STUDIES_CHARS)
credentials = TextLimit("The credentials", CREDENTIALS_CHARS)

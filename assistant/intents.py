"""Reading a question: which case it names, which image, and what it asks.

Deliberately rule-based: the case questions lab staff ask are few and
well-phrased ("how many blasts in image 3", "why was image 5 called Pro-B",
"which images are unreviewed"), and a rule either matches or does not, so the
assistant never answers a case question with numbers it inferred loosely.
Anything that is not a case question goes to knowledge-base retrieval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Intent(str, Enum):
    IMAGE_BLASTS = "image_blasts"
    IMAGE_WHY = "image_why"
    IMAGE_COUNTS = "image_counts"
    IMAGE_OVERVIEW = "image_overview"
    UNREVIEWED = "unreviewed"
    LOW_CONFIDENCE = "low_confidence"
    FAILED = "failed"
    WHO_FLAG = "who_flag"
    BLAST_PERCENT = "blast_percent"
    CASE_BLASTS = "case_blasts"
    CASE_CELLS = "case_cells"
    IMAGE_TOTAL = "image_total"
    DISTRIBUTION = "distribution"
    MODEL = "model"
    SUMMARY = "summary"
    DIAGNOSIS = "diagnosis"  # the signed interpretation and result
    DOMAIN = "domain"  # not about a case: the knowledge base answers


# "case BM-2026-00001", "case #12", "accession number S23-1234": the token must hold a digit.
_EXPLICIT_CASE = re.compile(
    r"\b(?:case|accession)(?:\s+(?:number|no\.?|id))?\s*(?:#|:)?\s*([A-Za-z0-9][A-Za-z0-9\-/_.]*[A-Za-z0-9]|\d)",
    re.IGNORECASE,
)
# Accession-shaped tokens anywhere: letters, then a hyphen-separated run of 3+ digits (BM-2026-00001, S23-1234).
_ACCESSION_SHAPED = re.compile(r"\b[A-Za-z]{1,8}\d{0,4}(?:[-/][A-Za-z0-9]+)*[-/]\d{3,}\b")
_IMAGE = re.compile(
    r"\b(?:image|img|picture|photo|field|frame)s?\s*(?:#|no\.?|number)?\s*(\d{1,5})\b", re.IGNORECASE
)
_CLASS_WORDS = {
    "Benign": re.compile(r"\b(benign|hematogones?|haematogones?|normal)\b", re.IGNORECASE),
    "Early": re.compile(r"\bearly(?:[\s-]+pre[\s-]*b)?\b", re.IGNORECASE),
    "Pre": re.compile(r"(?<!early )(?<!early-)\bpre[\s-]*b\b", re.IGNORECASE),
    "Pro": re.compile(r"\bpro[\s-]*b\b", re.IGNORECASE),
}

_UNREVIEWED = re.compile(
    r"\b(un-?reviewed|not\s+(?:yet\s+)?(?:been\s+)?reviewed|need(?:s)?\s+(?:a\s+)?review|pending\s+review|"
    r"awaiting\s+review|left\s+to\s+review|still\s+to\s+(?:be\s+)?review|to\s+be\s+reviewed|"
    r"have\s*n[o']t\s+been\s+reviewed|without\s+(?:a\s+)?review|not\s+(?:yet\s+)?confirmed)\b",
    re.IGNORECASE,
)
_LOW_CONFIDENCE = re.compile(r"\b(unidentified|low[\s-]+confidence|uncertain|unsure)\b", re.IGNORECASE)
_FAILED = re.compile(r"\b(failed|failures?|errors?|could\s*n[o']t\s+be\s+analy[sz]ed|broken)\b", re.IGNORECASE)
_WHY = re.compile(r"\b(why|reason|how\s+come|explain|what\s+made)\b", re.IGNORECASE)
_BLAST = re.compile(r"\bblasts?\b", re.IGNORECASE)
_BLAST_PERCENT = re.compile(
    r"\bblasts?\s*(?:%|percent(?:age)?|fraction|proportion|ratio|rate)|\b(?:percent(?:age)?|proportion|fraction)\s+of\s+blasts\b",
    re.IGNORECASE,
)
_CELLS = re.compile(
    r"\b(cells?|wbcs?|rbcs?|white\s+(?:blood\s+)?cells?|red\s+(?:blood\s+)?cells?|platelets?|counts?|counted)\b",
    re.IGNORECASE,
)
_WHO_FLAG = re.compile(r"\bwho\b.{0,30}\bflag|\bflag(?:ged)?\b", re.IGNORECASE)
_HOW_MANY_IMAGES = re.compile(r"\bhow\s+many\s+(?:images|pictures|fields|files)\b(?!\s+(?:are|were)\s+(?:called|labell?ed|classified))", re.IGNORECASE)
_DISTRIBUTION = re.compile(
    r"\b(distribution|per\s+class|breakdown|how\s+many\s+(?:images\s+)?(?:are|were)\s+(?:called|labell?ed|classified))\b",
    re.IGNORECASE,
)
_MODEL = re.compile(r"\b(which|what)\s+model\b|\bmodel\s+version\b", re.IGNORECASE)
_SUMMARY = re.compile(
    r"\b(summar(?:y|ise|ize)|overview|status\s+of\s+(?:this|the)\s+case|tell\s+me\s+about\s+(?:this|the)\s+case|"
    r"results?\s+(?:of|for)\s+(?:this|the)\s+case|how\s+is\s+(?:this|the)\s+case)\b",
    re.IGNORECASE,
)
# "what is the diagnosis", "was this case signed out", "the signed result": about this case's signature.
_DIAGNOSIS = re.compile(
    r"\b(?:(?:the|this|its|case'?s|signed|final)\s+(?:signed\s+)?(?:diagnosis|interpretation|conclusion)|"
    r"signed\s+(?:result|labels?|figures?|out\s+as)|what\s+was\s+signed|(?:was|is|has)\s+(?:this|the|it)\s+"
    r"(?:case\s+)?(?:been\s+)?signed(?:\s+out)?|sign-?out\s+result|who\s+signed)\b",
    re.IGNORECASE,
)
# "what is the diagnosis of ALL based on": a question about diagnosing in general.
_DIAGNOSIS_IN_GENERAL = re.compile(r"\bdiagnos(?:is|e|ing)\s+(?:of|for)\b|\bcriteria\b", re.IGNORECASE)
_HOW_MANY = re.compile(r"\bhow\s+many\b|\bnumber\s+of\b|\bcount\b|\btotal\b", re.IGNORECASE)
# A question about the world, not this case: "how many blasts are needed for a diagnosis".
_DOMAIN_SIGNAL = re.compile(
    r"\b(threshold|needed|required|requires?|in\s+general|normally|usually|define|definition|meaning|means?)\b",
    re.IGNORECASE,
)
_CASE_MARKER = re.compile(r"\b(this|the|my|our)\s+(case|patient|specimen|slide)\b|\bhere\b|\bso\s+far\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedQuestion:
    text: str
    intent: Intent
    image: int | None = None  # 1-based image position named in the question
    claimed_label: str | None = None  # a class the question names ("why was image 5 called Pro-B")
    case_refs: tuple[str, ...] = ()  # case references (accession numbers or ids) named in the question


def case_references(question: str) -> tuple[str, ...]:
    """Every case the question names, in order, without duplicates."""
    found: list[str] = []
    for match in _EXPLICIT_CASE.finditer(question):
        token = match.group(1).rstrip(".")
        if any(ch.isdigit() for ch in token):
            found.append(token)
    for match in _ACCESSION_SHAPED.finditer(question):
        found.append(match.group(0))
    unique: list[str] = []
    for token in found:
        if token.lower() not in (u.lower() for u in unique):
            unique.append(token)
    return tuple(unique)


def named_class(question: str) -> str | None:
    for name, pattern in _CLASS_WORDS.items():
        if pattern.search(question):
            return name
    return None


def parse(question: str) -> ParsedQuestion:
    """Classify ``question``. Case intents need words that tie them to the case
    (an image number, "unreviewed", "WHO flag", "how many blasts" without a
    domain signal); everything else is a domain question."""
    text = question.strip()
    refs = case_references(text)
    image_match = _IMAGE.search(text)
    image = int(image_match.group(1)) if image_match else None
    claimed = named_class(text)

    def result(intent: Intent) -> ParsedQuestion:
        return ParsedQuestion(text=text, intent=intent, image=image, claimed_label=claimed, case_refs=refs)

    if image is not None:
        if _WHY.search(text) or re.search(r"\b(called|classified|labell?ed|predicted|call)\b", text, re.IGNORECASE):
            return result(Intent.IMAGE_WHY)
        if _BLAST.search(text):
            return result(Intent.IMAGE_BLASTS)
        if _CELLS.search(text):
            return result(Intent.IMAGE_COUNTS)
        return result(Intent.IMAGE_OVERVIEW)
    if _UNREVIEWED.search(text):
        return result(Intent.UNREVIEWED)
    if _LOW_CONFIDENCE.search(text) and re.search(r"\b(which|how\s+many|list|any)\b", text, re.IGNORECASE):
        return result(Intent.LOW_CONFIDENCE)
    if _FAILED.search(text) and re.search(r"\b(which|how\s+many|list|any)\b", text, re.IGNORECASE):
        return result(Intent.FAILED)
    domain_phrasing = bool(_DOMAIN_SIGNAL.search(text)) and not _CASE_MARKER.search(text) and not refs
    if _WHO_FLAG.search(text) and not domain_phrasing:
        return result(Intent.WHO_FLAG)
    if domain_phrasing:
        return result(Intent.DOMAIN)
    if _DIAGNOSIS.search(text) and not _DIAGNOSIS_IN_GENERAL.search(text):
        return result(Intent.DIAGNOSIS)
    if _SUMMARY.search(text):
        return result(Intent.SUMMARY)
    if _BLAST_PERCENT.search(text):
        return result(Intent.BLAST_PERCENT)
    if _HOW_MANY.search(text) or _CASE_MARKER.search(text) or refs:
        if _DISTRIBUTION.search(text) or (claimed and re.search(r"\b(images?|called|labell?ed)\b", text, re.IGNORECASE)):
            return result(Intent.DISTRIBUTION)
        if _BLAST.search(text):
            return result(Intent.CASE_BLASTS)
        if _HOW_MANY_IMAGES.search(text):
            return result(Intent.IMAGE_TOTAL)
        if _CELLS.search(text):
            return result(Intent.CASE_CELLS)
    if _DISTRIBUTION.search(text):
        return result(Intent.DISTRIBUTION)
    if _MODEL.search(text):
        return result(Intent.MODEL)
    if refs or _CASE_MARKER.search(text):
        return result(Intent.SUMMARY)
    return result(Intent.DOMAIN)

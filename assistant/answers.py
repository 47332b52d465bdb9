"""Templated answers: every number in them is read from ``CaseFacts`` (the
database); domain answers quote the knowledge base and cite it."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from assistant.facts import CaseFacts, ImageFacts
from assistant.intents import Intent, ParsedQuestion
from assistant.knowledge import Hit, KnowledgeBase, Passage, excerpt
from ml.labels import display_name

FACTS_SOURCE_NUMBER = "F"

I_DONT_KNOW = (
    "I don't know: nothing in the Marrow-Find knowledge base answers that, and I won't guess. "
    "I can answer questions about a case (for example “how many blasts in image 3”, “why was image 5 called "
    "Pro-B”, “which images are unreviewed”, “what is the blast percentage”, “is the WHO flag raised”, "
    "“summarise this case”) and about ALL subtypes (Pro-B, Early Pre-B, Pre-B), hematogones, lymphoblast "
    "morphology, the WHO 20% blast threshold, Grad-CAM, watershed segmentation, using Marrow-Find, its reports "
    "and its limitations."
)
NEED_CASE = (
    "Which case do you mean? Ask from the case page, or name the case by its accession number "
    "(for example “summary of case BM-2026-00012”)."
)


def refused(reference: str) -> str:
    """The same words whether the case exists in another lab or nowhere: nothing leaks."""
    return (
        f"I can't find a case “{reference}” among the cases of your labs, so I can't tell you anything about it. "
        "I only answer about cases of the labs you are a member of."
    )


def facts_source(facts: CaseFacts) -> dict:
    return {"n": FACTS_SOURCE_NUMBER, "type": "case", "case_id": facts.case_id,
            "label": f"Case {facts.accession}: results in the Marrow-Find database"}


def _pct(fraction: float | None, percent: float | None = None) -> str:
    """The stored blast % (rounded once from the counts) where there is one, else from the fraction."""
    if isinstance(percent, (int, float)):
        return f"{percent:.1f}%"
    return "not determined" if fraction is None else f"{100 * fraction:.1f}%"


def _probabilities(image: ImageFacts, top: int = 3) -> str:
    return ", ".join(f"{display_name(name)} {p:.2f}" for name, p in image.probabilities[:top])


def _counts(image: ImageFacts) -> str:
    c = image.counts
    return f"{c.get('wbc', 0)} white cells, {c.get('rbc', 0)} red cells and {c.get('platelet', 0)} platelets"


def _review_state(image: ImageFacts) -> str:
    if image.signed_label:
        changed = "" if image.signed_label == image.label else f" (the AI's was {image.label_display})"
        return f"Its signed label is {display_name(image.signed_label)}{changed}."
    if not image.reviewed:
        return "It has not been reviewed yet."
    who = f" by {image.reviewer}" if image.reviewer else ""
    if image.overridden:
        return f"The reviewer{who} changed the label to {display_name(image.review_label)}."
    return f"The reviewer{who} confirmed {display_name(image.review_label)}."


def _not_analysed(image: ImageFacts) -> str:
    if image.status == "failed":
        return f"Image {image.position} ({image.filename}) could not be analysed: {image.error or 'it failed'}."
    return f"Image {image.position} ({image.filename}) has not been analysed yet (status: {image.status})."


def _no_such_image(facts: CaseFacts, number: int) -> str:
    return f"Case {facts.accession} has {len(facts.images)} image(s), numbered 1 to {len(facts.images)}; there is no image {number}."


def _demo_note(facts: CaseFacts) -> str:
    return " (These results come from a DEMO MODEL trained on synthetic images: not for diagnosis.)" if facts.demo else ""


AnswerParts = tuple[str, list[dict]]


def image_blasts(facts: CaseFacts, image: ImageFacts, parsed: ParsedQuestion, kb: KnowledgeBase) -> AnswerParts:
    if image.blasts is None:
        text = (
            f"Image {image.position} ({image.filename}): blasts were not determined. No cell-level blast model ran "
            f"on it, so Marrow-Find did not classify its white cells (this does not mean zero blasts). "
            f"Its segmentation counted {_counts(image)} [F]."
        )
    else:
        wbc = image.counts.get("wbc", 0)
        share = f" ({100 * image.blasts / wbc:.1f}% of its {wbc} white cells)" if wbc else ""
        text = f"Image {image.position} ({image.filename}) has {image.blasts} blast(s){share}, counted by the cell-level blast model [F]."
    return text + _demo_note(facts), []


def image_why(facts: CaseFacts, image: ImageFacts, parsed: ParsedQuestion, kb: KnowledgeBase) -> AnswerParts:
    sources: list[dict] = []
    lines = []
    if parsed.claimed_label and parsed.claimed_label != image.label:
        lines.append(
            f"The model did not call image {image.position} {display_name(parsed.claimed_label)}: "
            f"it called it {image.label_display}."
            + (f" The reviewer's label is {display_name(image.review_label)}." if image.review_label else "")
        )
    confidence = f" with probability {image.confidence:.2f}" if image.confidence is not None else ""
    lines.append(
        f"Image {image.position} ({image.filename}) was labelled {image.label_display} by the model "
        f"{image.model_name}{confidence}; its class probabilities were {_probabilities(image, 4)} [F]."
    )
    if image.low_confidence:
        threshold = getattr(settings, "LOW_CONFIDENCE_THRESHOLD", 0.6)
        lines.append(f"That is below the confidence threshold of {threshold:.2f}, so the image is flagged low-confidence (Unidentified until a person labels it).")
    passage = kb.passage("grad-cam.md", "How to read the Grad-CAM heatmap (overlay)")
    if image.cam_overlay_url:
        cite = " [1]" if passage else ""
        lines.append(
            f"The label comes from the image as a whole; to see which regions drove it, open the Grad-CAM overlay of "
            f"image {image.position}: red and yellow mark the regions that most raised the {image.label_display} score, "
            f"blue the least. Check that the hot regions sit on white cells rather than on background or the edge{cite}."
        )
        sources.append({"type": "overlay", "label": f"Grad-CAM overlay of image {image.position}", "url": image.cam_overlay_url})
    else:
        lines.append(f"No Grad-CAM overlay was stored for image {image.position}.")
    if passage:
        sources.insert(0, passage.as_source(1))
    lines.append(_review_state(image))
    return " ".join(lines) + _demo_note(facts), sources


def image_counts(facts: CaseFacts, image: ImageFacts, parsed: ParsedQuestion, kb: KnowledgeBase) -> AnswerParts:
    blasts = "blasts not determined" if image.blasts is None else f"{image.blasts} blast(s)"
    text = f"Image {image.position} ({image.filename}): the segmentation counted {_counts(image)}; {blasts} [F]."
    sources = []
    if image.segmentation_overlay_url:
        sources.append({"type": "overlay", "label": f"Segmentation overlay of image {image.position}", "url": image.segmentation_overlay_url})
    return text + _demo_note(facts), sources


def image_overview(facts: CaseFacts, image: ImageFacts, parsed: ParsedQuestion, kb: KnowledgeBase) -> AnswerParts:
    blasts = "blasts not determined" if image.blasts is None else f"{image.blasts} blast(s)"
    low = " (low confidence)" if image.low_confidence else ""
    text = (
        f"Image {image.position} ({image.filename}): AI label {image.label_display}{low}, probabilities "
        f"{_probabilities(image)}; {_counts(image)}; {blasts} [F]. {_review_state(image)}"
    )
    sources = []
    for kind, url in (("Grad-CAM", image.cam_overlay_url), ("Segmentation", image.segmentation_overlay_url)):
        if url:
            sources.append({"type": "overlay", "label": f"{kind} overlay of image {image.position}", "url": url})
    return text + _demo_note(facts), sources


IMAGE_ANSWERS: dict[Intent, Callable[..., AnswerParts]] = {
    Intent.IMAGE_BLASTS: image_blasts,
    Intent.IMAGE_WHY: image_why,
    Intent.IMAGE_COUNTS: image_counts,
    Intent.IMAGE_OVERVIEW: image_overview,
}


def _positions(images: list[ImageFacts]) -> str:
    return ", ".join(str(image.position) for image in images)


def unreviewed(facts: CaseFacts) -> str:
    waiting = facts.unreviewed
    analysed = len(facts.analysed)
    if not analysed:
        return f"No image of case {facts.accession} has been analysed yet, so there is nothing to review [F]."
    if not waiting:
        text = f"Every analysed image of case {facts.accession} has been reviewed ({analysed} of {analysed}) [F]."
    else:
        text = (
            f"{len(waiting)} of {analysed} analysed images of case {facts.accession} are unreviewed: "
            f"image(s) {_positions(waiting)} [F]."
        )
        low = [image for image in waiting if image.low_confidence]
        if low:
            text += f" Of these, image(s) {_positions(low)} are low-confidence (Unidentified) and must be labelled before sign-out."
    if facts.pending:
        text += f" Image(s) {_positions(facts.pending)} are still being analysed."
    if facts.failed:
        text += f" Image(s) {_positions(facts.failed)} failed and have nothing to review."
    return text


def low_confidence(facts: CaseFacts) -> str:
    low = [image for image in facts.analysed if image.low_confidence]
    if not low:
        return f"No image of case {facts.accession} is low-confidence [F]."
    waiting = [image for image in low if not image.reviewed]
    return (
        f"{len(low)} image(s) of case {facts.accession} are low-confidence: {_positions(low)}; "
        f"{len(waiting)} of them still Unidentified (not labelled by a person){': ' + _positions(waiting) if waiting else ''} [F]."
    )


def failed(facts: CaseFacts) -> str:
    if not facts.failed:
        return f"No image of case {facts.accession} failed [F]."
    details = "; ".join(f"image {i.position} ({i.filename}): {i.error or 'failed'}" for i in facts.failed)
    return f"{len(facts.failed)} image(s) of case {facts.accession} could not be analysed: {details} [F]."


def _ai_blast_line(facts: CaseFacts) -> str:
    s = facts.summary
    if s.get("blasts") is None:
        return "Blasts were not determined (no cell-level blast model ran), so there is no blast percentage."
    wbc = s.get("blast_wbc") if s.get("blast_wbc") is not None else s.get("wbc", 0)
    return f"{s['blasts']} blast(s) among {wbc} white cells: {_pct(s.get('blast_fraction'), s.get('blast_percent'))}."


def blast_line(facts: CaseFacts) -> str:
    """The signed blast figure once signed out, with the AI's beside it; else the AI's."""
    signed = facts.signed
    if signed is None:
        return _ai_blast_line(facts)
    if signed.blasts is None:
        head = f"Signed (version {signed.version}): blasts not determined."
    else:
        head = f"Signed (version {signed.version}): {signed.blasts} blast(s) among {signed.blast_wbc} white cells: {_pct(signed.blast_fraction, signed.blast_percent)}."
    return f"{head} AI estimate: {_ai_blast_line(facts)}"


def who_flag(facts: CaseFacts, kb: KnowledgeBase) -> AnswerParts:
    s = dict(facts.summary)
    if facts.signed is not None:  # the signed figures decide the flag once signed out
        s.update(who_flag=facts.signed.who_flag, blast_fraction=facts.signed.blast_fraction)
    threshold = round(100 * float(s.get("who_threshold", settings.WHO_BLAST_THRESHOLD)))
    if s.get("who_flag"):
        head = f"Yes: the WHO flag is raised for case {facts.accession}."
    elif s.get("blast_fraction") is None:
        head = f"The WHO flag of case {facts.accession} is not assessed: blasts were not determined."
    else:
        head = f"No: the WHO flag is not raised for case {facts.accession}."
    text = f"{head} {blast_line(facts)} The flag is raised for a bone-marrow case at {threshold}% blasts or more; this case is {facts.specimen.lower()} [F]."
    sources = []
    passage = kb.passage("who-blast-threshold.md", "The WHO flag in Marrow-Find")
    if passage:
        text += " The flag is a prompt to look, not a diagnosis: it rests on automatic counts of the uploaded fields, not a 500-cell differential [1]."
        sources.append(passage.as_source(1))
    return text + _demo_note(facts), sources


def blast_percent(facts: CaseFacts) -> str:
    return f"Case {facts.accession}: {blast_line(facts)} [F]" + _demo_note(facts)


def case_blasts(facts: CaseFacts) -> str:
    s = facts.summary
    if s.get("blasts") is None:
        return f"Case {facts.accession}: blasts were not determined (no cell-level blast model ran); this does not mean zero blasts [F]."
    per_image = [f"image {i.position}: {i.blasts}" for i in facts.analysed if i.blasts is not None]
    return f"Case {facts.accession}: {blast_line(facts)} Per image: {'; '.join(per_image)} [F]." + _demo_note(facts)


def case_cells(facts: CaseFacts) -> str:
    s = facts.summary
    return (
        f"Case {facts.accession}: {s.get('cells', 0)} cells counted in {s.get('analysed', len(facts.analysed))} analysed image(s): "
        f"{s.get('wbc', 0)} white cells, {s.get('rbc', 0)} red cells and {s.get('platelet', 0)} platelets [F]."
        + _demo_note(facts)
    )


def image_total(facts: CaseFacts) -> str:
    return (
        f"Case {facts.accession} has {len(facts.images)} image(s): {len(facts.analysed)} analysed, "
        f"{len(facts.failed)} failed, {len(facts.pending)} still in progress; {facts.reviewed} reviewed [F]."
    )


def _labels_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{display_name(k)} {v}" for k, v in counts.items()) or "none"


def distribution(facts: CaseFacts) -> str:
    ai = facts.summary.get("per_class") or {}
    ai_text = _labels_text(ai)
    current = _labels_text(facts.distribution)
    if facts.signed is not None:
        return (
            f"Case {facts.accession}, images per signed label (version {facts.signed.version}): "
            f"{_labels_text(facts.signed.per_class)}. Images per AI label (the model's, before review): {ai_text} [F]."
            + _demo_note(facts)
        )
    return (
        f"Case {facts.accession}, images per AI label: {ai_text}. After review (the reviewer's label where there is "
        f"one; Unidentified = low confidence and not yet labelled): {current} [F]." + _demo_note(facts)
    )


def model(facts: CaseFacts) -> str:
    names = sorted({i.model_name for i in facts.analysed if i.model_name})
    if not names:
        return f"No image of case {facts.accession} has been analysed, so no model has made a result [F]."
    demo = " It is a DEMO MODEL trained on synthetic images: not for diagnosis." if facts.demo else ""
    return f"The images of case {facts.accession} were labelled by: {', '.join(names)} [F].{demo}"


def diagnosis(facts: CaseFacts) -> str:
    """The signed interpretation, with the signed figures and the AI's beside them."""
    signed = facts.signed
    if signed is None:
        return (
            f"Case {facts.accession} has not been signed out, so it has no diagnosis yet: only a pathologist's "
            f"signature gives one. The AI labels so far (not a diagnosis): {_labels_text(facts.summary.get('per_class') or {})} [F]."
            + _demo_note(facts)
        )
    when = signed.signed_at.strftime("%Y-%m-%d %H:%M") if signed.signed_at else "?"
    dx = signed.diagnosis_text or "no structured interpretation was recorded with this version"
    text = f"Case {facts.accession} was signed out (version {signed.version}) by {signed.signer_line} on {when}: {dx}."
    if signed.comment:
        text += f" Comment: “{signed.comment}”."
    text += f" Signed labels: {_labels_text(signed.per_class)}. {blast_line(facts)}"
    if facts.status.lower() != "signed out":
        text += f" An amendment is open; version {signed.version} stays in force until the next signature."
    return text + " [F]" + _demo_note(facts)


def summary(facts: CaseFacts) -> str:
    s = facts.summary
    ai = ", ".join(f"{display_name(k)} {v}" for k, v in (s.get("per_class") or {}).items()) or "none"
    cells = (f"Cells counted: {s.get('cells', 0)} ({s.get('wbc', 0)} white, {s.get('rbc', 0)} red, "
             f"{s.get('platelet', 0)} platelets).")
    if facts.signed is not None:  # the signed result leads; the AI's follows, marked as the AI's
        return (
            diagnosis(facts).removesuffix(_demo_note(facts)).removesuffix(" [F]")
            + f" Beside it, the AI (the models, before review): labels {ai}. {cells} [F]." + _demo_note(facts)
        )
    flag = "raised" if s.get("who_flag") else ("not assessed" if s.get("blast_fraction") is None else "not raised")
    return (
        f"Case {facts.accession} ({facts.specimen}, {facts.stain}) is {facts.status.lower()}. "
        f"{len(facts.images)} image(s): {len(facts.analysed)} analysed, {len(facts.failed)} failed. "
        f"AI labels: {ai}. {cells} {blast_line(facts)} WHO flag: {flag}. "
        f"Reviewed: {facts.reviewed} of {len(facts.analysed)} [F]." + _demo_note(facts)
    )


def case_answer(facts: CaseFacts, parsed: ParsedQuestion, kb: KnowledgeBase) -> AnswerParts:
    """The templated answer to a case question (numbers from ``facts`` only)."""
    if parsed.intent in IMAGE_ANSWERS:
        image = facts.image(parsed.image) if parsed.image is not None else None
        if image is None:
            return _no_such_image(facts, parsed.image or 0), []
        if not image.analysed:
            return _not_analysed(image) + " [F]", []
        return IMAGE_ANSWERS[parsed.intent](facts, image, parsed, kb)
    if parsed.intent == Intent.WHO_FLAG:
        return who_flag(facts, kb)
    simple: dict[Intent, Callable[[CaseFacts], str]] = {
        Intent.UNREVIEWED: unreviewed,
        Intent.LOW_CONFIDENCE: low_confidence,
        Intent.FAILED: failed,
        Intent.BLAST_PERCENT: blast_percent,
        Intent.CASE_BLASTS: case_blasts,
        Intent.CASE_CELLS: case_cells,
        Intent.IMAGE_TOTAL: image_total,
        Intent.DISTRIBUTION: distribution,
        Intent.MODEL: model,
        Intent.DIAGNOSIS: diagnosis,
    }
    return simple.get(parsed.intent, summary)(facts), []


def knowledge_answer(hits: list[Hit]) -> AnswerParts:
    """Quote the best passage and point to the next ones; each cited by number."""
    best = hits[0]
    text = f"From “{best.passage.title}”, section “{best.passage.heading}” [1]: {excerpt(best.passage.text)}"
    sources = [best.passage.as_source(1)]
    seen: set[tuple[str, str]] = {(best.passage.doc, best.passage.heading)}
    also: list[Passage] = []
    for hit in hits[1:]:
        key = (hit.passage.doc, hit.passage.heading)
        if key not in seen and hit.score >= 0.5 * best.score:
            seen.add(key)
            also.append(hit.passage)
    for number, passage in enumerate(also, start=2):
        sources.append(passage.as_source(number))
    if also:
        text += " See also: " + "; ".join(f"“{p.heading}” [{n}]" for n, p in enumerate(also, start=2)) + "."
    return text, sources

"""factory_boy factories for test data (cookiecutter-django style): the one place tests get their rows from.

Model factories first, then the case builders on top of them:

* ``analysed_case``: a case of analysed images (``drawn=True``: drawn smears, counts from the real
  ``ml.segment`` and overlays from the real ``ml.overlay``, as the report and assistant tests need);
* ``uploaded_case``: a case as an upload leaves it (queued images with real files), for the pipeline;
* ``review_case`` and ``record_sign_out``: a reviewer's labels and a recorded sign-out;
* ``assistant_case``: the assistant tests' case;
* ``add_cells`` and ``smear_case``: white-cell rows (on a grid, or on ml.synthetic smears' real cells);
* ``case_images``, ``timed_analysis``, ``fail_image``, ``TaskRunFactory``: the rows the monitoring reads.

Nothing here is a mock: every image row has a real image file behind it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import factory
import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from diagnostics import models

CLASSES = ["Benign", "Early", "Pre", "Pro"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

    class Params:
        site_admin = factory.Trait(is_staff=True)  # sees the monitoring dashboard and the admin

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class LabFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Lab
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Haematology Lab {n}")
    slug = factory.Sequence(lambda n: f"lab-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Membership

    user = factory.SubFactory(UserFactory)
    lab = factory.SubFactory(LabFactory)
    role = models.Role.TECHNICIAN


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Case

    lab = factory.SubFactory(LabFactory)
    accession_number = factory.Sequence(lambda n: f"BM-2026-{n:05d}")
    patient_pseudonym = factory.Sequence(lambda n: f"P{n:06d}")
    specimen = models.Specimen.BONE_MARROW
    stain = "Wright-Giemsa"


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Batch

    case = factory.SubFactory(CaseFactory)


class SlideImageFactory(factory.django.DjangoModelFactory):
    """An image row with a real PNG file behind it (a synthetic smear)."""

    class Meta:
        model = models.SlideImage

    batch = factory.SubFactory(BatchFactory)
    case = factory.SelfAttribute("batch.case")
    position = factory.Sequence(lambda n: n + 1)
    original_filename = factory.Sequence(lambda n: f"smear-{n}.png")
    width = 64
    height = 64

    @factory.lazy_attribute
    def file(self):
        from tests.imagefactory import png_bytes

        return ContentFile(png_bytes(seed=self.position, size=(self.height, self.width)), name=self.original_filename)

    @factory.lazy_attribute
    def sha256(self):
        self.file.seek(0)
        digest = hashlib.sha256(self.file.read()).hexdigest()
        self.file.seek(0)
        return digest


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.ModelVersion

    name = factory.Sequence(lambda n: f"model-{n}")
    arch = "resnet18"
    class_names = ["Benign", "Early", "Pre", "Pro"]
    binary_map = {"Benign": 0, "Early": 1, "Pre": 1, "Pro": 1}
    checkpoint_path = "/nonexistent.pt"
    sha256 = factory.Sequence(lambda n: hashlib.sha256(str(n).encode()).hexdigest())
    is_demo = True

    class Params:
        # Validation metrics as the training run records them (ml.metrics on a seeded toy split).
        validated = factory.Trait(metrics=factory.LazyFunction(lambda: validation_metrics()))


def validation_metrics(seed: int = 0) -> dict:
    """Metrics as the training run records them, computed by the real ml.metrics on a seeded toy split."""
    from ml.metrics import compute_metrics

    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), 80)
    logits = rng.normal(0, 1, (80, len(CLASSES)))
    logits[np.arange(80), y] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = compute_metrics(y, probs, CLASSES)
    metrics["split"] = "val"
    return metrics


class AnalysisFactory(factory.django.DjangoModelFactory):
    """An analysis of an image, with CAM and segmentation overlay PNGs (``overlays=False`` for none)."""

    class Meta:
        model = models.Analysis
        skip_postgeneration_save = True

    image = factory.SubFactory(SlideImageFactory, status=models.ImageStatus.DONE)
    model_version = factory.SubFactory(ModelVersionFactory)
    label = "Pre"
    confidence = 0.7
    low_confidence = factory.LazyAttribute(lambda a: a.confidence < 0.6)
    all_probability = factory.LazyAttribute(lambda a: 0.1 if a.label == "Benign" else 0.9)
    cell_counts = factory.LazyFunction(lambda: {"wbc": 10, "rbc": 40, "platelet": 3})
    blasts = None
    timings = factory.LazyFunction(lambda: {"total": 0.5})

    @factory.lazy_attribute
    def probabilities(self):
        names = list(self.model_version.class_names)
        rest = round((1.0 - self.confidence) / max(len(names) - 1, 1), 4)
        return {name: (self.confidence if name == self.label else rest) for name in names}

    @factory.post_generation
    def overlays(obj, create, extracted, **kwargs):
        if not create or extracted is False:
            return
        from tests.imagefactory import png_bytes

        obj.cam_overlay.save("cam.png", ContentFile(png_bytes(seed=100 + obj.image.position)), save=False)
        obj.segmentation_overlay.save("segmentation.png", ContentFile(png_bytes(seed=200 + obj.image.position)), save=False)
        obj.save(update_fields=["cam_overlay", "segmentation_overlay"])


class CellFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Cell

    analysis = factory.SubFactory(AnalysisFactory)
    index = factory.Sequence(lambda n: n + 1)
    kind = "wbc"
    bbox = factory.LazyAttribute(lambda c: [10 * c.index, 10, 10 * c.index + 8, 18])
    ai_label = "lymphocyte"
    probabilities = factory.LazyAttribute(lambda c: {c.ai_label: 0.9})
    confidence = 0.9


class ReviewFactory(factory.django.DjangoModelFactory):
    """A reviewer's label for an analysed image (its AI label unless ``label`` is given)."""

    class Meta:
        model = "review.Review"

    analysis = factory.SubFactory(AnalysisFactory)
    image = factory.SelfAttribute("analysis.image")
    reviewer = factory.SubFactory(UserFactory)
    label = factory.SelfAttribute("analysis.label")
    agrees_with_ai = factory.LazyAttribute(lambda r: r.label == r.analysis.label)


class TaskRunFactory(factory.django.DjangoModelFactory):
    """A finished task's run record, as the workers write it (``at``: when; ``seconds``: how long)."""

    class Meta:
        model = models.TaskRun

    class Params:
        at = factory.LazyFunction(timezone.now)
        seconds = 0.5

    task_name = "segment_image"
    task_id = "t"
    queue = "cpu"
    worker = "w1@host"
    case = None
    image_count = 1
    ok = True
    error = ""
    retries = 0
    timings = factory.LazyAttribute(lambda r: {"task": r.seconds})
    started_at = factory.SelfAttribute("at")
    finished_at = factory.SelfAttribute("at")


# --------------------------------------------------------------------------- analysed cases


TRUNCATED = "The file is truncated: its end marker is missing."  # a failed image's reason


@dataclass
class AnalysedCase:
    """What ``analysed_case`` made: unpacks as ``case, images``; ``analyses`` maps position -> Analysis."""

    case: models.Case
    images: list = field(default_factory=list)
    analyses: dict = field(default_factory=dict)
    model: models.ModelVersion | None = None

    def __iter__(self):
        return iter((self.case, self.images))


def _per_image(value, n: int, what: str) -> list:
    if value is None or not isinstance(value, (list, tuple)):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{what}: {len(value)} values for {n} images")
    return list(value)


def analysed_case(
    lab,
    *,
    labels: list[str] | None = None,
    n_images: int | None = None,
    confidences: list[float] | None = None,
    low_confidence: tuple[int, ...] = (),
    blasts: int | list[int | None] | None = None,
    cell_counts: dict | list[dict | None] | None = None,
    failed: tuple[int, ...] = (),
    drawn: bool = False,
    model: models.ModelVersion | None = None,
    status: str = models.CaseStatus.AWAITING_REVIEW,
    created_by=None,
    size: int = 160,
    **case_fields,
) -> AnalysedCase:
    """A case of analysed images at positions 1..n, one per entry of ``labels`` (default ``n_images``,
    3, cycling the four classes).

    * ``confidences``: one per image (default 0.9, or 0.4 for the positions in ``low_confidence``);
      a call under 0.6 is a low-confidence one (Unidentified).
    * ``blasts``: one count for every image or one per image.
    * ``cell_counts``: the counts of every image or one dict per image (default: the factory's,
      or the real segmentation's when drawn).
    * ``failed``: positions with no analysis, their image failed (``TRUNCATED``).
    * ``drawn=False``: seeded-noise PNGs (64 px) with PNG overlays, fixed counts; fast, for the pages.
      ``drawn=True``: drawn smear-like pictures (``size`` px), counts from the real ``ml.segment`` and
      Grad-CAM/segmentation overlays from the real ``ml.overlay``, for the reports and the assistant.
    * ``model``: the analyses' model version (default a new demo one; with validation metrics when drawn).
    """
    from tests.imagefactory import gaussian_cam, png_bytes, smear_like

    if labels is None:
        labels = [CLASSES[i % len(CLASSES)] for i in range(3 if n_images is None else n_images)]
    elif n_images is not None and n_images != len(labels):
        raise ValueError(f"{len(labels)} labels for n_images={n_images}")
    n = len(labels)
    if confidences is None:
        confidences = [0.4 if position in low_confidence else 0.9 for position in range(1, n + 1)]
    confidences = _per_image(confidences, n, "confidences")
    blasts = _per_image(blasts, n, "blasts")
    cell_counts = _per_image(cell_counts, n, "cell_counts")
    model = model or ModelVersionFactory(validated=drawn)
    case = CaseFactory(lab=lab, status=status, created_by=created_by, **case_fields)
    batch = BatchFactory(case=case, uploaded_by=created_by)
    built = AnalysedCase(case=case, model=model)
    for position, label in enumerate(labels, start=1):
        seed = case.pk * 1000 + position
        if drawn:
            picture = smear_like(seed, size)
            from ml.overlay import encode_png

            png, width = encode_png(picture), size
        else:
            png, width = png_bytes(seed=seed), 64
        image = SlideImageFactory(
            batch=batch, case=case, position=position, file=ContentFile(png, name=f"smear-{position}.png"),
            original_filename=f"smear-{position}.png", width=width, height=width,
            status=models.ImageStatus.FAILED if position in failed else models.ImageStatus.DONE,
            error_code="truncated" if position in failed else "", error=TRUNCATED if position in failed else "",
        )
        built.images.append(image)
        if position in failed:
            continue
        fields = dict(image=image, model_version=model, label=label, confidence=confidences[position - 1],
                      blasts=blasts[position - 1])
        if not drawn:
            if cell_counts[position - 1] is not None:
                fields["cell_counts"] = dict(cell_counts[position - 1])
            built.analyses[position] = AnalysisFactory(**fields)
            continue
        from ml.overlay import cam_overlay, encode_png, segmentation_overlay
        from ml.segment import segment

        result = segment(picture)
        counts = cell_counts[position - 1] or result.counts
        analysis = AnalysisFactory(**fields, cell_counts=dict(counts), overlays=False)
        analysis.cam_overlay.save("cam.png", ContentFile(encode_png(cam_overlay(picture, gaussian_cam(size, seed)))),
                                  save=False)
        analysis.segmentation_overlay.save("segmentation.png",
                                           ContentFile(encode_png(segmentation_overlay(picture, result))), save=False)
        analysis.save(update_fields=["cam_overlay", "segmentation_overlay"])
        built.analyses[position] = analysis
    return built


def _case_of(target) -> models.Case:
    return target.case if isinstance(target, AnalysedCase) else target


def review_case(target, reviewer, labels: dict[int, str] | None = None, *, only=None) -> None:
    """A review of every analysed image of ``target`` (a Case or an AnalysedCase), or of those at the
    positions in ``only``: its AI label unless ``labels`` maps its position to another."""
    labels = labels or {}
    for image in _case_of(target).images.order_by("position"):
        analysis = image.analyses.first()
        if analysis is None or (only is not None and image.position not in only):
            continue
        ReviewFactory(analysis=analysis, reviewer=reviewer, label=labels.get(image.position, analysis.label))


def record_sign_out(target, signer, *, reason: str = "", **interpretation):
    """A sign-out recorded as the review area records it (a SignOut row and the case fields).

    The sign-out view itself (TOTP, checks) is the review area's and has its own tests; the
    end-to-end report test goes through it. ``interpretation``: SignOut fields (diagnosis,
    diagnosis_subtype, further_studies, diagnosis_comment, signer_name, signer_credentials)."""
    from diagnostics.services.case_record import case_figures
    from review import services as review_service
    from review.models import SignOut

    case = models.Case.objects.get(pk=_case_of(target).pk)
    items = review_service.review_items(case)
    version = case.sign_out_version + 1
    now = timezone.now()
    labels = {
        str(item.image.pk): {
            "position": item.image.position,
            "label": item.current_label,
            "exclusion": item.exclusion,
            "ai_label": item.ai_label,
            "reviewer": item.latest_review.reviewer.email if item.latest_review else None,
            "comment": item.latest_review.comment if item.latest_review else "",
        }
        for item in items
        if item.analysis is not None
    }
    summary = case_figures(case)
    summary.pop("signed_result", None)
    summary["reviewed_distribution"] = {}
    row = SignOut.objects.create(case=case, version=version, signed_by=signer, signed_at=now, labels=labels,
                                 summary=summary, amendment_reason=reason, **interpretation)
    models.Case.objects.filter(pk=case.pk).update(status=models.CaseStatus.SIGNED_OUT, signed_out_by=signer,
                                                  signed_out_at=now, sign_out_version=version)
    _case_of(target).refresh_from_db()
    return row


# The assistant tests' case (lab A): 6 drawn images, image 6 failed; images 1, 3 and 4 reviewed,
# image 4 overridden Pro-B -> Pre-B. The tests compute what they expect from these rows.
ASSISTANT_LABELS = ["Benign", "Pre", "Early", "Pro", "Pro", "Pre"]
ASSISTANT_CONFIDENCES = [0.95, 0.55, 0.83, 0.9, 0.91, 0.7]
ASSISTANT_BLASTS = [0, None, 2, 3, 1, None]
ASSISTANT_REVIEWED = {1: "Benign", 3: "Early", 4: "Pre"}


def assistant_case() -> AnalysedCase:
    """For ``setUpTestData``: lab A's case of the assistant tests, reviewed by a pathologist of lab A."""
    lab = LabFactory(name="Lab A", slug="lab-a")
    reviewer = UserFactory(username="assistant-reviewer", email="rev@lab-a.org")
    MembershipFactory(user=reviewer, lab=lab, role=models.Role.PATHOLOGIST)
    built = analysed_case(lab, labels=ASSISTANT_LABELS, confidences=ASSISTANT_CONFIDENCES, blasts=ASSISTANT_BLASTS,
                          failed=(6,), drawn=True, clinical_note="Confidential: 6-year-old with bruising")
    review_case(built, reviewer, ASSISTANT_REVIEWED, only=ASSISTANT_REVIEWED)
    return built


# --------------------------------------------------------------------------- white cells


def add_cells(analysis, labels: list[str], *, low: tuple[int, ...] = (), side: int = 8) -> list:
    """One Cell per label on ``analysis`` (1-based indexes, boxes on a grid); those whose index is
    in ``low`` are low-confidence calls."""
    rows = []
    for index, label in enumerate(labels, start=1):
        x0, y0 = (index - 1) % 6 * (side + 2), (index - 1) // 6 * (side + 2)
        confidence = 0.45 if index in low else 0.9
        rows.append(models.Cell(
            analysis=analysis, index=index, kind="wbc", bbox=[x0, y0, x0 + side, y0 + side],
            ai_label=label, probabilities={label: confidence}, confidence=confidence, low_confidence=index in low,
        ))
    return models.Cell.objects.bulk_create(rows)


SMEAR_OTHERS = ("lymphocyte", "neutrophil", "monocyte", "lymphocyte", "eosinophil")


def smear_case(
    lab,
    *,
    n_images: int = 1,
    size: tuple[int, int] = (320, 320),
    wbc_per_image: int = 8,
    low_every: int = 0,
    specimen: str = models.Specimen.BONE_MARROW,
    status: str = models.CaseStatus.AWAITING_REVIEW,
    subtype: str | tuple[str, ...] = "Pre",
):
    """A case of synthetic smears (ml.synthetic) with one Cell per white cell of each smear's ground
    truth (its real box), so crops and markers show real cells. The AI labels are test data: the
    smear's blasts are "blast", its other white cells cycle through a few classes, and every
    ``low_every``-th cell is a low-confidence call. ``subtype`` is the smear class of every image,
    or one per image (cycled): a "Pre" smear's white cells are all blasts, a "Benign" one's none.
    Returns ``(case, images, cells)``."""
    import io

    from PIL import Image

    from ml.synthetic import make_smear

    model_version = ModelVersionFactory()
    case = CaseFactory(lab=lab, status=status, specimen=specimen)
    batch = BatchFactory(case=case)
    images, cells = [], []
    n = 0
    for position in range(1, n_images + 1):
        seed = case.pk * 1000 + position
        kind = subtype if isinstance(subtype, str) else subtype[(position - 1) % len(subtype)]
        smear = make_smear(seed, label=kind, size=size, n_wbc=wbc_per_image)
        buffer = io.BytesIO()
        Image.fromarray(smear.image).save(buffer, format="PNG")
        image = SlideImageFactory(
            batch=batch, case=case, position=position, width=size[1], height=size[0],
            file=ContentFile(buffer.getvalue(), name=f"smear-{position}.png"),
            status=models.ImageStatus.DONE,
        )
        images.append(image)
        analysis = AnalysisFactory(image=image, model_version=model_version, label=kind, confidence=0.9,
                                   overlays=False, cell_counts={"wbc": wbc_per_image})
        rows = []
        wbc_ids = sorted(i for i, kind in smear.kinds.items() if kind == "wbc")
        for index, instance in enumerate(wbc_ids, start=1):
            ys, xs = np.nonzero(smear.cell_labels == instance)
            if not len(xs):
                continue
            n += 1
            label = "blast" if instance in smear.blast_ids else SMEAR_OTHERS[n % len(SMEAR_OTHERS)]
            low = bool(low_every) and n % low_every == 0
            confidence = 0.45 if low else 0.91
            rows.append(models.Cell(
                analysis=analysis, index=index, kind="wbc",
                bbox=[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                ai_label=label, probabilities={label: confidence}, confidence=confidence, low_confidence=low,
            ))
        cells += models.Cell.objects.bulk_create(rows)
    return case, images, cells


# --------------------------------------------------------------------------- uploaded cases


def uploaded_case(lab, n_images: int = 3, *, files: list[bytes] | None = None, filenames: list[str] | None = None,
                  status: str = models.CaseStatus.QUEUED, **case_fields) -> models.Case:
    """A case with ``n_images`` queued images (synthetic smears, or ``files``) written to MEDIA_ROOT,
    as an upload leaves it. ``filenames`` (default ``field-<n>.png``) must end in the files' real
    format: the pipeline checks it. Deliberately broken payloads are stored as 1x1."""
    from ml.imageio import inspect_image
    from tests.imagefactory import smear_bytes

    case = CaseFactory(lab=lab, status=status, **case_fields)
    batch = BatchFactory(case=case)
    payloads = files if files is not None else [smear_bytes(seed) for seed in range(1, n_images + 1)]
    names = filenames or [f"field-{position}.png" for position in range(1, len(payloads) + 1)]
    for position, (data, name) in enumerate(zip(payloads, names, strict=True), start=1):
        try:
            info = inspect_image(data, filename=name)
            width, height = info.width, info.height
        except Exception:  # noqa: BLE001 deliberately broken payloads: the pipeline must cope
            width = height = 1
        image = models.SlideImage(
            case=case, batch=batch, position=position, original_filename=name,
            sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
        )
        image.file.save("upload" + Path(name).suffix, ContentFile(data), save=False)
        image.save()
    batch.accepted_count = len(payloads)
    batch.save()
    return case


# --------------------------------------------------------------------------- rows the monitoring reads


def case_images(lab, n: int, *, status: str = models.ImageStatus.DONE, accession: str | None = None) -> list:
    """``n`` images (positions 1..n, real PNG files) of a new case of ``lab``, in state ``status``."""
    case = CaseFactory(lab=lab, **({"accession_number": accession} if accession else {}))
    batch = BatchFactory(case=case)
    return [SlideImageFactory(batch=batch, case=case, position=i + 1, status=status) for i in range(n)]


def timed_analysis(image, timings: dict[str, float], *, at: datetime | None = None, model=None):
    """An analysis with these stage ``timings`` made ``at`` (default now), by ``model`` (default the first one)."""
    return AnalysisFactory(
        image=image,
        model_version=model or models.ModelVersion.objects.first() or ModelVersionFactory(),
        label="Benign",
        confidence=0.9,
        timings=timings,
        created_at=at or timezone.now(),
        overlays=False,
    )


def fail_image(image, code: str, reason: str, *, attempts: int = 1, at: datetime | None = None):
    """What diagnostics.pipeline.fail_image leaves behind: the image row and its audit event."""
    from diagnostics import audit

    models.SlideImage.objects.filter(pk=image.pk).update(status=models.ImageStatus.FAILED, error_code=code,
                                                         error=reason, attempts=attempts)
    event = audit.record(models.AuditEvent.Verb.ANALYSIS_FAILED, actor_label="worker test", case=image.case,
                         obj=image, code=code, reason=reason, position=image.position,
                         filename=image.original_filename)
    if at is not None:
        models.AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
    return event

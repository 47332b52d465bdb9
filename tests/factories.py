"""factory_boy factories for test data (cookiecutter-django style)."""

from __future__ import annotations

import hashlib

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from diagnostics import models


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery staple")

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

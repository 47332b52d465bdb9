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

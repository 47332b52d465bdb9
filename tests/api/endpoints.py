"""Every lab-scoped API endpoint, for the outsider and anonymous tests: one
list, so that a new endpoint added here is tested for both at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse

from tests.imagefactory import png_bytes


@dataclass(frozen=True)
class Endpoint:
    label: str
    method: str
    url: str
    data: dict[str, Any] = field(default_factory=dict)
    multipart: bool = False


def upload_data() -> dict[str, Any]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return {"files": [SimpleUploadedFile("extra.png", png_bytes(seed=999), content_type="image/png")]}


def case_endpoints(case, image) -> list[Endpoint]:
    """The endpoints that take a case (and image) of lab A."""
    pk, image_pk = case.pk, image.pk
    return [
        Endpoint("case detail", "get", reverse("api-case-detail", kwargs={"pk": pk})),
        Endpoint("progress", "get", reverse("api-case-progress", kwargs={"pk": pk})),
        Endpoint("summary", "get", reverse("api-case-summary", kwargs={"pk": pk})),
        Endpoint("report", "get", reverse("api-case-report", kwargs={"pk": pk})),
        Endpoint("images list", "get", reverse("api-case-images", kwargs={"pk": pk})),
        Endpoint(
            "images upload",
            "post",
            reverse("api-case-images", kwargs={"pk": pk}),
            upload_data(),
            True,
        ),
        Endpoint(
            "image detail",
            "get",
            reverse("api-image-detail", kwargs={"pk": pk, "image_pk": image_pk}),
        ),
        *[
            Endpoint(
                f"image file {kind}",
                "get",
                reverse(
                    "api-image-file",
                    kwargs={"pk": pk, "image_pk": image_pk, "kind": kind},
                ),
            )
            for kind in ("original", "cam", "segmentation")
        ],
    ]


def global_endpoints() -> list[Endpoint]:
    """Endpoints that are not one lab's object (still closed to anonymous callers)."""
    from tests.diagnostics.upload_helpers import case_fields

    return [
        Endpoint("cases list", "get", reverse("api-cases")),
        Endpoint(
            "case create",
            "post",
            reverse("api-cases"),
            {**case_fields(), **upload_data()},
            True,
        ),
        Endpoint("models list", "get", reverse("api-models")),
        Endpoint("token rotate", "post", reverse("api-token")),
        Endpoint("token revoke", "delete", reverse("api-token")),
    ]


def call(client, endpoint: Endpoint):
    method = getattr(client, endpoint.method)
    if endpoint.multipart:
        return method(endpoint.url, endpoint.data, format="multipart")
    return method(endpoint.url)

"""Forms of the case pages: a new case with its images, and more images for a case.

The forms only check the case fields and that files were sent; each file is
checked by diagnostics.services.upload, which can tell one bad file from the
rest (a form field can only accept or refuse the whole set).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from diagnostics.access import labs_for
from diagnostics.models import Case, Lab
from marrowfind import textlimits


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """``<input type=file multiple>``: cleans to a list of UploadedFile (Django docs' recipe)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".jpg,.jpeg,.png,.tif,.tiff,.zip"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        # Deliberately not FileField's per-file validation: it refuses the whole form for one
        # empty file. Each file is judged on its own by diagnostics.services.upload.
        items = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        files = [item for item in items if isinstance(item, UploadedFile)]
        if not files and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return files


def _files_help() -> str:
    return (
        f"JPEG, PNG or TIFF images, or zip archives of them; up to {settings.MAX_FILES_PER_BATCH} images, "
        f"{settings.MAX_UPLOAD_FILE_MB} MB each. Each file is checked on its own: bad files are listed "
        "with the reason and the rest go on."
    )


class ImagesForm(forms.Form):
    files = MultipleFileField(label="Images", help_text="")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["files"].help_text = _files_help()


class CaseUploadForm(forms.ModelForm):
    """The case fields plus its first images. ``lab`` is a choice only for users of several labs."""

    lab = forms.ModelChoiceField(queryset=Lab.objects.none(), empty_label=None)
    files = MultipleFileField(label="Images")

    class Meta:
        model = Case
        fields = ["lab", "accession_number", "patient_pseudonym", "specimen", "stain", "clinical_note"]  # noqa: RUF012 (Django Meta)
        widgets = {"clinical_note": forms.Textarea(attrs={"rows": 3})}  # noqa: RUF012

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labs = labs_for(user).order_by("name")
        self.fields["lab"].queryset = labs
        if labs.count() == 1:
            self.fields["lab"].initial = labs.first()
            self.fields["lab"].widget = forms.HiddenInput()
        self.fields["files"].help_text = _files_help()
        self.fields["accession_number"].widget.attrs.update({"autofocus": True})
        # The same limit and message as the API (marrowfind.textlimits); the browser's own
        # maxlength would cut a pasted note silently, so the server says it instead.
        self.fields["clinical_note"].validators.append(textlimits.clinical_note)
        self.fields["clinical_note"].help_text = f"At most {textlimits.CLINICAL_NOTE_CHARS:,} characters."

    def clean_accession_number(self) -> str:
        return self.cleaned_data["accession_number"].strip()

    def clean(self):
        cleaned = super().clean()
        # A hidden field's error would show nowhere: say it at the top of the form.
        if isinstance(self.fields["lab"].widget, forms.HiddenInput) and "lab" in self._errors:
            reasons = " ".join(self._errors.pop("lab"))
            self.add_error(None, f"The lab of this form is not one of yours ({reasons}) Reload the page and send it again.")
        return cleaned

    def validate_unique(self) -> None:
        # The model's (lab, accession_number) constraint, checked with a message for people.
        lab = self.cleaned_data.get("lab")
        accession = self.cleaned_data.get("accession_number")
        if lab and accession and Case.objects.filter(lab=lab, accession_number=accession).exists():
            self.add_error(
                "accession_number",
                forms.ValidationError(
                    "Accession number %(accession)s already exists in %(lab)s.",
                    code="duplicate_accession",
                    params={"accession": accession, "lab": lab.name},
                ),
            )

    def case_fields(self) -> dict:
        return {
            name: self.cleaned_data[name]
            for name in ("accession_number", "patient_pseudonym", "specimen", "stain", "clinical_note")
        }

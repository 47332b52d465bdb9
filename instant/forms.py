"""The instant check upload form."""

from __future__ import annotations

from django import forms
from django.conf import settings


class InstantCheckForm(forms.Form):
    image = forms.FileField(
        help_text="One JPEG, PNG or TIFF image of a smear.",
        widget=forms.ClearableFileInput(attrs={"accept": ".jpg,.jpeg,.png,.tif,.tiff"}),
    )
    lab = forms.ModelChoiceField(queryset=None, empty_label=None)

    def __init__(self, *args, labs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lab"].queryset = labs
        if labs.count() == 1:
            self.fields["lab"].widget = forms.HiddenInput()
            self.fields["lab"].initial = labs.first().pk

    def clean_image(self):
        upload = self.cleaned_data["image"]
        limit = settings.MAX_UPLOAD_FILE_MB * 1024 * 1024
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {settings.MAX_UPLOAD_FILE_MB} MB.")
        return upload

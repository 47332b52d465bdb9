"""Forms of the review area: worklist filters, the per-image review, sign-out,
amendment, member invitations and the instant check upload."""

from __future__ import annotations

from django import forms

from diagnostics.models import CaseStatus, ExclusionReason, Specimen
from marrowfind import textlimits
from review.models import BAllSubtype, Diagnosis
from review.services import WorklistQuery

SCOPES = [("awaiting", "Awaiting review"), ("mine", "Assigned to me"), ("all", "All cases")]
FLAGS = [("", "Any flag"), ("who", "WHO ≥20% blasts"), ("low_confidence", "Unidentified (low confidence)")]


class WorklistFilterForm(forms.Form):
    scope = forms.ChoiceField(choices=SCOPES, required=False)
    q = forms.CharField(label="Accession", required=False, max_length=64)
    status = forms.ChoiceField(choices=[("", "Any status"), *CaseStatus.choices], required=False)
    specimen = forms.ChoiceField(choices=[("", "Any specimen"), *Specimen.choices], required=False)
    flag = forms.ChoiceField(choices=FLAGS, required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The 'From' date is after the 'To' date.")
        return data

    def to_query(self, default_scope: str) -> WorklistQuery:
        data = self.cleaned_data if self.is_valid() else {}
        return WorklistQuery(
            scope=data.get("scope") or default_scope,
            status=data.get("status") or "",
            specimen=data.get("specimen") or "",
            flag=data.get("flag") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            q=data.get("q") or "",
        )


class HistorySearchForm(forms.Form):
    q = forms.CharField(label="Accession or patient pseudonym", required=False, max_length=64)


class ReviewForm(forms.Form):
    """Confirm (label = the AI label) or override one image's label, or, with the
    "exclude" button, take it out of the figures as not assessable (a reason is required)."""

    label = forms.ChoiceField(choices=[], required=False)
    exclusion = forms.ChoiceField(
        label="Not assessable", choices=[("", "—"), *ExclusionReason.choices], required=False
    )
    comment = forms.CharField(required=False, validators=[textlimits.review_comment], widget=forms.Textarea(attrs={"rows": 2}))
    submission_token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, class_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].choices = [(name, name) for name in class_names]

    @property
    def excluding(self) -> bool:
        return bool(self.data.get("exclude"))

    def clean(self):
        data = super().clean()
        if self.excluding:
            if not data.get("exclusion"):
                self.add_error("exclusion", "Choose why the image is not assessable.")
        else:
            data["exclusion"] = ""  # a reason left selected does not count without the exclude button
            if not data.get("label") and "label" not in self.errors:
                self.add_error("label", "Choose a label.")
        return data


def totp_code_field() -> forms.CharField:
    """The fresh authenticator code entered with a signature (review.stepup checks it)."""
    return forms.CharField(
        label="Authenticator code",
        max_length=10,
        help_text="The 6-digit code your authenticator app shows now. The code you logged in with does not count.",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "pattern": "[0-9 ]*",
                                      "size": 8}),
    )


class SignOutForm(forms.Form):
    """The signature: the interpretation, an optional comment, the confirmation and a fresh TOTP code."""

    diagnosis = forms.ChoiceField(label="Interpretation", choices=Diagnosis.choices, widget=forms.RadioSelect)
    diagnosis_subtype = forms.ChoiceField(
        label="B-ALL subtype", required=False, choices=[("", "—"), *BAllSubtype.choices],
        help_text="With “consistent with B-ALL” only.",
    )
    further_studies = forms.CharField(
        label="Further studies advised", required=False, max_length=textlimits.FURTHER_STUDIES_CHARS,
        validators=[textlimits.further_studies], help_text="With “suspicious” only, e.g. flow cytometric immunophenotyping.",
    )
    diagnosis_comment = forms.CharField(
        label="Comment", required=False, validators=[textlimits.diagnosis_comment],
        widget=forms.Textarea(attrs={"rows": 3}), help_text="Printed on the report under the interpretation.",
    )
    confirm = forms.BooleanField(
        label="I have reviewed every image of this case and sign out the labels and the interpretation shown.",
        required=True,
    )
    code = totp_code_field()

    def clean(self):
        data = super().clean()
        diagnosis = data.get("diagnosis")
        if diagnosis == Diagnosis.B_ALL and not data.get("diagnosis_subtype"):
            self.add_error("diagnosis_subtype", "Choose the B-ALL subtype (or “subtype not specified”).")
        if diagnosis and diagnosis != Diagnosis.B_ALL:
            data["diagnosis_subtype"] = ""
        if diagnosis == Diagnosis.SUSPICIOUS and not (data.get("further_studies") or "").strip():
            self.add_error("further_studies", "Name the further studies advised (for example flow cytometry).")
        if diagnosis and diagnosis != Diagnosis.SUSPICIOUS:
            data["further_studies"] = ""
        return data


class AmendForm(forms.Form):
    reason = forms.CharField(
        label="Reason for the amendment", validators=[textlimits.amendment_reason], widget=forms.Textarea(attrs={"rows": 3})
    )
    code = totp_code_field()


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=None, required=False, empty_label="Nobody")

    def __init__(self, *args, reviewers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = reviewers
        self.fields["assignee"].label_from_instance = lambda u: u.email or u.username


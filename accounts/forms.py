"""Forms of lab member management."""

from __future__ import annotations

from django import forms

from diagnostics.models import Role
from marrowfind import textlimits


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.TECHNICIAN)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ProfileForm(forms.Form):
    """The name and credentials a member signs reports with."""

    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    credentials = forms.CharField(
        label="Credentials", required=False, validators=[textlimits.credentials],
        help_text='Printed after your name on the reports you sign, e.g. "MD, FRCPath".',
    )

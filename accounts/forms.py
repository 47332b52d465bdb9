"""Forms of lab member management."""

from __future__ import annotations

from django import forms

from diagnostics.models import Role


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.TECHNICIAN)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

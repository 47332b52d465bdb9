"""``{{ user|person }}``: a person as every page names them (full name, else e-mail, else user name).

A template builtin (settings.TEMPLATES), the same rule as
:func:`diagnostics.services.case_record.person_name`, which the case record,
the PDF, the sign-out snapshot and the assistant use."""

from __future__ import annotations

from django import template

from diagnostics.services.case_record import person_name

register = template.Library()


@register.filter(name="person")
def person(user) -> str:
    return person_name(user) or ""

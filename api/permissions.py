"""Who may call the API.

Lab isolation itself is done by the querysets (``diagnostics.access``): an
object of another lab is simply not found (404), never "forbidden", so ids of
other labs' cases leak nothing. The permission classes here only decide who
may use the API at all and who may change what.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from diagnostics.access import can_upload, labs_for


class IsLabMember(BasePermission):
    """Authenticated and a member of at least one lab.

    An anonymous caller gets 401 (``WWW-Authenticate: Token``); a signed-in
    account without any lab gets 403 ``no_lab``."""

    message = "Your account is not a member of any lab."
    code = "no_lab"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return labs_for(user).exists()


class CanUploadToCase(BasePermission):
    """Uploading images to a case: a member of the case's lab (technician,
    pathologist or lab admin), the same rule as the web upload page."""

    message = "You may not upload images to this case."
    code = "permission_denied"

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return can_upload(request.user, obj.lab)

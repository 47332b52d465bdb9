"""Lab admins invite members: the user and membership are created and a
one-time set-password link is emailed; no one else can manage members."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from diagnostics.models import AuditEvent, Membership, Role
from tests.base import BaseTestCase

NEW_PASSWORD = "a long new password 4 marrow"


class MemberInviteTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        cache.clear()
        self.url = reverse("lab_members", args=[self.lab.slug])

    def invite(self, user, email="newdoc@lab-a.org", role=Role.PATHOLOGIST):
        self.client.force_login(user)
        return self.client.post(self.url, {"email": email, "role": role})

    def test_invite_creates_member_and_the_emailed_link_sets_the_password(self):
        response = self.invite(self.lab_admin, email="NewDoc@Lab-A.org")
        self.assertRedirects(response, self.url, fetch_redirect_response=False)
        user = get_user_model().objects.get(email="newdoc@lab-a.org")
        self.assertFalse(user.has_usable_password())
        self.assertEqual(Membership.objects.get(user=user).role, Role.PATHOLOGIST)
        self.assertTrue(AuditEvent.objects.filter(lab=self.lab, verb=AuditEvent.Verb.MEMBER_INVITED).exists())
        self.assertEqual(len(mail.outbox), 1)
        message = mail.outbox[0]
        self.assertEqual(message.to, ["newdoc@lab-a.org"])
        self.assertIn("Lab A", message.subject)
        link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", message.body).group(1)

        self.client.logout()
        form_page = self.client.get(link, follow=True)  # allauth moves the key into the session
        self.assertEqual(form_page.status_code, 200)
        response = self.client.post(form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
                                    {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        self.assertEqual(response.status_code, 302)
        user.refresh_from_db()
        self.assertTrue(user.check_password(NEW_PASSWORD))
        login = self.client.post(reverse("account_login"), {"login": "newdoc@lab-a.org", "password": NEW_PASSWORD})
        self.assertEqual(login.status_code, 302)
        self.assertEqual(self.client.get(reverse("worklist")).status_code, 200)

    def test_existing_account_is_added_and_told(self):
        self.invite(self.lab_admin, email=self.outsider.email, role=Role.TECHNICIAN)
        self.assertEqual(Membership.objects.filter(user=self.outsider).count(), 2)
        self.assertIn("added", mail.outbox[0].subject)
        self.assertNotIn("password/reset", mail.outbox[0].body)

    def test_inviting_a_current_member_is_a_clear_error(self):
        response = self.invite(self.lab_admin, email=self.technician.email)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "already a member")
        self.assertEqual(len(mail.outbox), 0)

    def test_missing_email_is_a_clear_error(self):
        response = self.invite(self.lab_admin, email="")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "This field is required")

    def test_change_role(self):
        self.client.force_login(self.lab_admin)
        membership = Membership.objects.get(user=self.technician, lab=self.lab)
        self.client.post(reverse("member_role", args=[self.lab.slug, membership.pk]), {"role": Role.PATHOLOGIST})
        membership.refresh_from_db()
        self.assertEqual(membership.role, Role.PATHOLOGIST)

    def test_last_admin_cannot_demote_themselves(self):
        self.client.force_login(self.lab_admin)
        membership = Membership.objects.get(user=self.lab_admin, lab=self.lab)
        self.client.post(reverse("member_role", args=[self.lab.slug, membership.pk]), {"role": Role.TECHNICIAN})
        membership.refresh_from_db()
        self.assertEqual(membership.role, Role.LAB_ADMIN)

    def test_pathologist_and_technician_get_403(self):
        for user in (self.pathologist, self.technician):
            self.assertEqual(self.invite(user).status_code, 403)
            self.assertEqual(self.client.get(self.url).status_code, 403)
            membership = Membership.objects.get(user=self.technician, lab=self.lab)
            response = self.client.post(reverse("member_role", args=[self.lab.slug, membership.pk]), {"role": Role.LAB_ADMIN})
            self.assertEqual(response.status_code, 403)
        self.assertFalse(get_user_model().objects.filter(email="newdoc@lab-a.org").exists())

    def test_outsider_gets_404(self):
        self.assertEqual(self.invite(self.outsider).status_code, 404)
        self.assertEqual(self.client.get(self.url).status_code, 404)
        membership = Membership.objects.get(user=self.technician, lab=self.lab)
        self.assertEqual(
            self.client.post(reverse("member_role", args=[self.lab.slug, membership.pk]), {"role": Role.LAB_ADMIN}).status_code,
            404,
        )
        self.assertFalse(get_user_model().objects.filter(email="newdoc@lab-a.org").exists())

    def test_membership_of_another_lab_in_the_url_is_404(self):
        Membership.objects.create(user=self.lab_admin, lab=self.other_lab, role=Role.TECHNICIAN)
        self.client.force_login(self.lab_admin)
        foreign = Membership.objects.get(user=self.outsider, lab=self.other_lab)
        response = self.client.post(reverse("member_role", args=[self.lab.slug, foreign.pk]), {"role": Role.TECHNICIAN})
        self.assertEqual(response.status_code, 404)

    def test_members_home_redirects_an_admin_and_explains_to_others(self):
        self.client.force_login(self.lab_admin)
        self.assertRedirects(self.client.get(reverse("members_home")), self.url, fetch_redirect_response=False)
        self.client.force_login(self.technician)
        self.assertContains(self.client.get(reverse("members_home")), "Only lab admins")

    def test_anonymous_is_sent_to_login(self):
        for response in (self.client.get(self.url), self.client.post(self.url, {"email": "x@y.org"}), self.client.get(reverse("members_home"))):
            self.assertTrue(response["Location"].startswith(reverse("account_login")))

"""A person is named one way on every page: full name, else e-mail, else user name
(the ``person`` template builtin over ``case_record.person_name``)."""

from __future__ import annotations

from django.template import Context, Template
from django.urls import reverse

from tests.base import BaseTestCase
from tests.factories import ReviewFactory, UserFactory, analysed_case


class PersonNameTests(BaseTestCase):
    def test_the_filter_prefers_the_full_name_then_the_email_then_the_user_name(self):
        named = UserFactory(username="jd", email="jd@lab-a.org", first_name="Jane", last_name="Doe")
        unnamed = UserFactory(username="nobody", email="")
        render = Template("{{ a|person }}|{{ b|person }}|{{ c|person }}|{{ d|person }}").render
        text = render(Context({"a": named, "b": self.pathologist, "c": unnamed, "d": None}))
        self.assertEqual(text, "Jane Doe|patty@lab-a.org|nobody|")

    def test_the_review_page_names_the_reviewer_by_full_name(self):
        self.pathologist.first_name, self.pathologist.last_name = "Patricia", "Okafor"
        self.pathologist.save()
        case, images = analysed_case(self.lab, n_images=1)
        ReviewFactory(analysis=images[0].analyses.get(), reviewer=self.pathologist)
        self.client.force_login(self.pathologist)
        page = self.client.get(reverse("case_review", args=[case.pk])).content.decode()
        self.assertIn("by Patricia Okafor", page)
        self.assertNotIn("by patty@lab-a.org", page)

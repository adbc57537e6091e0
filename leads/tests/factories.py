"""factory-boy factories for users, stages, sources, leads and activities."""

import factory
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from leads.models import Activity, Lead, Source, Stage

DEFAULT_PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@test.example")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    role = Role.SALES
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def stage_named(name):
    return Stage.objects.get(name=name)


class SourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Source
        django_get_or_create = ("name",)

    name = "Manual"


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Stage {n}")
    position = factory.Sequence(lambda n: 100 + n)
    kind = Stage.Kind.OPEN


class LeadFactory(factory.django.DjangoModelFactory):
    """A valid live lead written straight to the table (services are tested on their own)."""

    class Meta:
        model = Lead

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"lead{n}@prospect.example")
    phone = ""
    company = factory.Faker("company")
    source = factory.LazyFunction(lambda: Source.objects.get(name="Manual"))
    stage = factory.LazyFunction(lambda: Stage.objects.get(name="New Lead"))
    owner = factory.SubFactory(UserFactory)
    created_by = factory.LazyAttribute(lambda lead: lead.owner)
    stage_changed_at = factory.LazyFunction(timezone.now)


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    lead = factory.SubFactory(LeadFactory)
    actor = factory.LazyAttribute(lambda activity: activity.lead.owner)
    kind = Activity.Kind.NOTE
    body = factory.Faker("sentence")

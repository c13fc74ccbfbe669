import factory

from accounts.models import Application, Organization, Tier, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    tier = factory.LazyFunction(lambda: Tier.objects.get(slug="self-hosted"))


class ApplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Application

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Application {n}")

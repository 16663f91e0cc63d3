import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


class DeviceGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeviceGroup
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Group {n}")


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device

    machine_id = factory.Sequence(lambda n: f"{n:040x}")
    computer_dns_name = factory.Sequence(lambda n: f"host-{n}.corp.example")
    os_platform = "Windows11"
    device_group = factory.SubFactory(DeviceGroupFactory)
    aad_device_id = factory.Faker("uuid4")
    last_seen = factory.LazyFunction(timezone.now)


class RecommendationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SecurityRecommendation

    external_id = factory.Sequence(lambda n: f"va-_-vendor{n}-_-product{n}")
    name = factory.Sequence(lambda n: f"Update Product {n}")
    product_name = factory.Sequence(lambda n: f"product{n}")
    vendor = "contoso"
    category = SecurityRecommendation.Category.APPLICATION
    remediation_type = SecurityRecommendation.RemediationType.UPDATE
    severity_score = 7.5
    recommended_version = "2.0"


class ExposureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Exposure

    recommendation = factory.SubFactory(RecommendationFactory)
    device = factory.SubFactory(DeviceFactory)
    first_seen = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=10))
    last_seen = factory.LazyFunction(timezone.now)


def expose(recommendation, group, count: int) -> list[Device]:
    """Create `count` devices in `group`, each exposed to `recommendation` (the database counts them)."""
    devices = DeviceFactory.create_batch(count, device_group=group)
    for device in devices:
        ExposureFactory(recommendation=recommendation, device=device)
    recommendation.refresh_from_db(fields=["exposed_devices"])
    return devices

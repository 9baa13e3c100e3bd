"""Keys follow the engine's one definition: ``checkout.v2`` is refused with the same clear
message by the flag form, the segment form and the management API; nothing is written."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from flagsite_sdk.engine import is_key, key_problem
from hypothesis import given
from hypothesis import strategies as st

from apikeys.services import provision
from flags.models import Flag, Segment, validate_key
from tests.integration.flags.conftest import World

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
SAYS = "&#x27;checkout.v2&#x27; is not a valid key: &#x27;.&#x27; is not allowed"


@given(st.text(alphabet="ab09_-.Z é", max_size=12))
def test_the_model_validator_is_the_engine_definition(key: str) -> None:
    if is_key(key):
        validate_key(key)
    else:
        with pytest.raises(ValidationError) as refused:
            validate_key(key)
        assert refused.value.messages == [key_problem(key)]


def owner_client(world: World) -> Client:
    client = Client()
    client.force_login(world.users["owner"])
    return client


def test_the_flag_form_refuses_a_dotted_key_and_says_why(world: World) -> None:
    response = owner_client(world).post(
        reverse("admin:flags_flag_add"),
        {"project": world.project.pk, "key": "checkout.v2", "name": "Checkout v2",
         "kind": "release", "value_type": "boolean", "variants": '{"on": true, "off": false}',
         "reason": "new checkout"},
    )  # fmt: skip
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["key"], errors
    assert SAYS in response.content.decode()
    assert not Flag.objects.filter(key="checkout.v2").exists()


def test_the_segment_form_refuses_it_too(world: World) -> None:
    response = owner_client(world).post(
        reverse("admin:flags_segment_add"),
        {"project": world.project.pk, "key": "beta.users", "name": "Beta",
         "key_attribute": "targetingKey", "reason": "beta"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "&#x27;.&#x27; is not allowed" in response.content.decode()
    assert not Segment.objects.filter(key="beta.users").exists()


def test_the_api_refuses_it_with_the_message_on_the_key_field(world: World) -> None:
    _, raw = provision(
        world.env("development"), kind="management", name="ci", created_by=world.users["owner"]
    )
    response = Client().post(
        f"/api/v1/projects/{world.project.key}/flags",
        {"key": "checkout.v2", "name": "Checkout v2"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 400, response.content
    (error,) = response.json()["errors"]
    assert error["path"] == "key"
    assert error["message"].startswith("'checkout.v2' is not a valid key: '.' is not allowed.")
    assert not Flag.objects.filter(key="checkout.v2").exists()
    fine = Client().post(
        f"/api/v1/projects/{world.project.key}/flags",
        {"key": "checkout-v2", "name": "Checkout v2"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert fine.status_code == 201, fine.content

"""What a real cluster answers that a lenient client mistakes for success: slow project
creation (an ONGOING row), 409 codes that are not "already done", unordered user pages,
accounts that must not be adopted, and addresses that need encoding in a path."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hopsplane.devworld.hopsworks_standin import PREFIX, FakeHopsworks, _error
from hopsplane.integrations.hopsworks import (
    HopsworksClient,
    HopsworksMisconfigured,
    HopsworksRejected,
)
from hopsplane.integrations.hopsworks.errors import ALREADY_DONE, ProjectNotReady


@pytest.fixture
def client(hw: FakeHopsworks) -> Iterator[HopsworksClient]:
    c = HopsworksClient(hw.url, hw.state.api_key, hw.state.auth_api_key, timeout=5, retries=2,
                        backoff=0, create_timeout=0.5)
    yield c
    c.close()


def _sent(hw: FakeHopsworks, method: str, route: str) -> int:
    return hw.state.requests.count((method, PREFIX + route))


def test_a_slow_creation_is_sent_once_found_by_name_and_ready_only_when_done(
    client: HopsworksClient, hw: FakeHopsworks,
) -> None:
    owner = client.create_user("slow@example.com", "S", "L")
    release = hw.hold_creation()
    try:
        project = client.create_project("hp_slow", owner.username, "d")  # its timeout passes
        assert _sent(hw, "POST", "/admin/projects/createas") == 1  # never re-sent
        assert hw.state.projects[project.id]["creationStatus"] == "ONGOING"
        with client.acting_as(owner.username) as as_owner, pytest.raises(ProjectNotReady):
            as_owner.project_ready(project.id)  # the owner is not even a member yet
    finally:
        release.set()
    while hw.state.held:  # the stand-in finishes the build
        release.wait(0.05)
    with client.acting_as(owner.username) as as_owner:
        as_owner.project_ready(project.id)
    assert hw.state.projects[project.id]["creationStatus"] == "DONE"


def test_a_project_of_that_name_made_by_someone_else_is_not_ours(
    client: HopsworksClient, hw: FakeHopsworks,
) -> None:
    ours = client.create_user("ours@example.com", "O", "U")
    theirs = client.create_user("theirs@example.com", "T", "H")
    assert hw.create_project_as(theirs.username, "hp_taken")[0] == 200
    with pytest.raises(HopsworksMisconfigured) as info:
        client.create_project("hp_taken", ours.username, "d")
    assert "hp_taken" in info.value.message and theirs.username in info.value.message
    assert "did not create it" in info.value.message


def test_only_the_already_done_codes_of_the_table_are_success(
    client: HopsworksClient, hw: FakeHopsworks,
) -> None:
    assert set(ALREADY_DONE) == {160003, 150024, 150081}
    assert all("RESTCodes.java:" in done.source for done in ALREADY_DONE.values())
    assert [d.name for d in ALREADY_DONE.values() if d.http_status == 409] == ["USER_EXISTS"]
    # a POST /jwt re-sent with the key name of the first answers 409 DUPLICATE_KEY_ERROR
    owner = client.create_user("jwt@example.com", "J", "W")
    hw.state.refuse["POST /jwt"] = (409, _error(200015, "A signing key with the same name "
                                                        "already exists."))
    with pytest.raises(HopsworksRejected) as info, client.acting_as(owner.username):
        pass
    assert info.value.http_status == 409 and info.value.error_code == 200015
    assert "200015" in info.value.message


def test_a_user_is_found_by_email_without_listing_a_cluster_of_10000(
    client: HopsworksClient, hw: FakeHopsworks,
) -> None:
    for i in range(10_000):
        hw.state.add_user(f"user{i:05d}@example.com")
    hw.state.add_user("user00042@example.com.evil")  # the filter is a prefix match
    found = client.find_user("USER00042@example.com")
    assert found is not None and found.email == "user00042@example.com"
    assert client.find_user("nobody@example.com") is None
    adopted = client.create_user("user09999@example.com", "U", "N")  # 409 -> looked up
    assert adopted.email == "user09999@example.com"
    new = client.create_user("new@example.com", "N", "E")
    assert new.email == "new@example.com"
    assert hw.state.users_listed < 10  # rows answered by GET /admin/users, all calls


def test_an_account_that_is_not_a_plain_user_is_never_adopted(
    client: HopsworksClient, hw: FakeHopsworks,
) -> None:
    hw.state.add_user("boss@example.com", roles=("HOPS_ADMIN", "HOPS_USER"))
    hw.state.add_user("agent@example.com", roles=("AGENT",))
    for email, role in (("boss@example.com", "HOPS_ADMIN"), ("agent@example.com", "AGENT")):
        with pytest.raises(HopsworksMisconfigured) as info:
            client.create_user(email, "B", "O")
        assert email in info.value.message and role in info.value.message
    plain = hw.state.add_user("plain@example.com")
    assert client.create_user("plain@example.com", "P", "L").id == plain["id"]


def test_emails_in_paths_are_percent_encoded(client: HopsworksClient, hw: FakeHopsworks) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    odd = "o'neil#1?x%2F@example.com"
    client.create_user(odd, "O", "N")
    project = client.create_project("hp_enc", owner.username, "d")
    with client.acting_as(owner.username) as as_owner:
        as_owner.add_member(project.id, odd)
        assert odd in hw.state.projects[project.id]["members"]
        as_owner.change_role(project.id, odd, "Data owner")
        assert hw.state.projects[project.id]["members"][odd] == "Data owner"
        as_owner.remove_member(project.id, odd)
    assert odd not in hw.state.projects[project.id]["members"]

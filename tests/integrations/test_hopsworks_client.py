"""The real Hopsworks client against a local server that answers like Hopsworks."""

from collections.abc import Iterator

import httpx
import pytest

from hopsplane.integrations.hopsworks import (
    HopsworksClient,
    HopsworksRejected,
    HopsworksUnavailable,
)
from tests.fake_hopsworks import FakeHopsworks


@pytest.fixture
def hw() -> Iterator[FakeHopsworks]:
    server = FakeHopsworks()
    yield server
    server.close()


@pytest.fixture
def client(hw: FakeHopsworks) -> Iterator[HopsworksClient]:
    c = HopsworksClient(hw.url, hw.state.api_key, timeout=5, retries=2, backoff=0)
    yield c
    c.close()


def test_registers_a_user_and_an_existing_user_is_success(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    first = client.create_user("Ada@Example.com", "Ada", "Lovelace")
    again = client.create_user("ada@example.com", "Ada", "Lovelace")
    assert first == again
    assert first.username.startswith("ada")
    assert len(hw.state.users) == 1
    assert hw.state.users[first.id]["status"] == "ACTIVATED_ACCOUNT"
    assert client.find_user("nobody@example.com") is None


def test_creates_a_project_once_and_adds_members(client: HopsworksClient, hw: FakeHopsworks) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    client.create_user("member@example.com", "M", "E")
    project = client.create_project("hp_abc", owner.username, "d")  # createas takes a username
    assert client.create_project("hp_abc", owner.username, "d") == project
    assert [p.name for p in client.list_projects()] == ["hp_abc"]
    client.add_member(project.id, "member@example.com")
    client.add_member(project.id, "member@example.com")  # "already a member": success
    assert hw.state.projects[project.id]["members"] == {"owner@example.com", "member@example.com"}
    client.remove_member(project.id, "member@example.com")
    client.remove_member(project.id, "member@example.com")  # gone already: success
    assert hw.state.projects[project.id]["members"] == {"owner@example.com"}


def test_deactivates_and_reactivates(client: HopsworksClient, hw: FakeHopsworks) -> None:
    user = client.create_user("u@example.com", "U", "X")
    client.set_user_active(user.id, False)
    assert hw.state.users[user.id]["status"] == "DEACTIVATED_ACCOUNT"
    client.set_user_active(user.id, True)
    assert hw.state.users[user.id]["status"] == "ACTIVATED_ACCOUNT"


def test_lists_users_across_pages(hw: FakeHopsworks) -> None:
    c = HopsworksClient(hw.url, hw.state.api_key, retries=0)
    for i in range(5):
        c.create_user(f"user{i}@example.com", "U", str(i))
    assert len(c._paged("/admin/users", page=2)) == 5
    assert {u.email for u in c.list_users()} == {f"user{i}@example.com" for i in range(5)}
    c.close()


def test_retries_5xx_then_succeeds(client: HopsworksClient, hw: FakeHopsworks) -> None:
    hw.fail_next(2)
    user = client.create_user("late@example.com", "L", "A")
    assert user.email == "late@example.com"
    assert [r for r in hw.state.requests if r[0] == "POST"] == [("POST", "/hopsworks-api/api/admin/users")] * 3


def test_a_long_outage_is_unavailable(client: HopsworksClient, hw: FakeHopsworks) -> None:
    hw.fail_next(10)
    with pytest.raises(HopsworksUnavailable, match="after 3 attempts"):
        client.list_users()


def test_connection_errors_are_retried_then_unavailable() -> None:
    c = HopsworksClient("http://127.0.0.1:1", "k", timeout=1, retries=1, backoff=0)
    with pytest.raises(HopsworksUnavailable, match="ConnectError"):
        c.list_projects()


def test_client_errors_are_not_retried_and_carry_the_error_code(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    with pytest.raises(HopsworksRejected) as info:
        client.create_project("hp_x", "unknown", "d")
    assert info.value.http_status == 400 and info.value.error_code == 160001
    assert len(hw.state.requests) == 1


def test_a_member_hopsworks_did_not_add_is_an_error_though_it_answers_200(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_abc", owner.username, "d")
    with pytest.raises(HopsworksRejected, match="was not found in the system"):
        client.add_member(project.id, "nobody@example.com")
    assert hw.state.projects[project.id]["members"] == {"owner@example.com"}


def test_reads_the_project_list_of_older_releases(client: HopsworksClient, hw: FakeHopsworks) -> None:
    # Hopsworks < 3.2 (ProjectsAdmin) answered a bare list of ProjectAdminInfoDTO
    hw.state.old_project_list = True
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_old", owner.username, "d")
    assert client.list_projects() == [project]


def test_a_wrong_key_is_rejected_and_the_key_is_never_shown(hw: FakeHopsworks) -> None:
    c = HopsworksClient(hw.url, "wrong-key", retries=0)
    with pytest.raises(HopsworksRejected) as info:
        c.list_users()
    assert info.value.http_status == 401
    assert "wrong-key" not in str(info.value) and "wrong-key" not in repr(c)


def test_the_request_carries_the_apikey_header_and_base_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    c = HopsworksClient("https://hw.example.com/", "k1", transport=httpx.MockTransport(handler))
    assert c.list_projects() == []
    assert seen[0].headers["Authorization"] == "ApiKey k1"
    assert str(seen[0].url) == "https://hw.example.com/hopsworks-api/api/admin/projects"


def test_members_as_the_newest_sources_report_them_400_failed_to_add(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    # newest ProjectMembersService: a member not added is a ProjectException
    # FAILED_TO_ADD_MEMBER (150081, HTTP 400) with the reason in usrMsg
    hw.state.members_failure = "exception"
    owner = client.create_user("owner@example.com", "O", "W")
    client.create_user("member@example.com", "M", "E")
    project = client.create_project("hp_new", owner.username, "d")
    client.add_member(project.id, "member@example.com")
    client.add_member(project.id, "member@example.com")  # "already a member": success
    assert hw.state.projects[project.id]["members"] == {"owner@example.com", "member@example.com"}
    with pytest.raises(HopsworksRejected, match="was not found in the system") as info:
        client.add_member(project.id, "nobody@example.com")
    assert info.value.error_code == 150081 and info.value.http_status == 400

"""The real Hopsworks client against a local server that answers like Hopsworks."""

import time
from collections.abc import Iterator

import httpx
import pytest

from hopsplane.devworld.hopsworks_standin import FakeHopsworks
from hopsplane.integrations.hopsworks import (
    DEFAULT_PROJECT_SERVICES,
    HopsworksClient,
    HopsworksMisconfigured,
    HopsworksRejected,
    HopsworksUnavailable,
)
from hopsplane.integrations.hopsworks import client as hopsworks_client
from hopsplane.integrations.hopsworks.client import OWNER_TOKEN_SECONDS


@pytest.fixture
def client(hw: FakeHopsworks) -> Iterator[HopsworksClient]:
    c = HopsworksClient(hw.url, hw.state.api_key, hw.state.auth_api_key, timeout=5, retries=2,
                        backoff=0)
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


def test_creates_a_project_once_with_the_clients_services_and_reads_it_back(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_abc", owner.username, "d")  # createas takes a username
    assert client.create_project("hp_abc", owner.username, "d") == project
    assert [p.name for p in client.list_projects()] == ["hp_abc"]
    assert hw.state.projects[project.id]["services"] == list(DEFAULT_PROJECT_SERVICES)
    assert "FEATURESTORE" in hw.state.projects[project.id]["services"]
    assert project.namespace == "hp-abc"  # 3.x says no namespace: derived as Hopsworks does
    with pytest.raises(HopsworksRejected) as info:
        client.create_project("hp_bad", owner.username, "d", ["JOBS", "NOTEBOOKS"])
    # IllegalArgumentException -> ILLEGAL_ARGUMENT, a 422 (RESTCodes.java:805-806)
    assert (info.value.http_status, info.value.error_code) == (422, 120001)


def test_reads_the_namespace_a_4x_cluster_lists(client: HopsworksClient, hw: FakeHopsworks) -> None:
    hw.state.namespace_key = "namespace"
    owner = client.create_user("owner@example.com", "O", "W")
    hw.state.version = "4.2.0"
    project = client.create_project("Hp_Abc", owner.username, "d")
    hw.state.projects[project.id]["namespace"] = "custom-ns"
    assert client.list_projects()[0].namespace == "custom-ns"
    assert client.version() == (4, 2, 0)


def test_the_admin_key_cannot_manage_members_as_a_real_cluster_refuses_it(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    """Today's bug: members were added with the admin API key. ProjectMembersService is
    JWT-only (401 200003), and a token of someone outside the project is refused by
    ProjectAuthFilter (403 160000), admins included."""
    owner = client.create_user("owner@example.com", "O", "W")
    client.create_user("member@example.com", "M", "E")
    project = client.create_project("hp_abc", owner.username, "d")
    body = {"projectTeam": [{"projectTeamPK": {"projectId": project.id,
                                               "teamMember": "member@example.com"},
                             "teamRole": "Data scientist"}]}
    with pytest.raises(HopsworksRejected) as info:
        client._request("POST", f"/project/{project.id}/projectMembers", json=body)
    assert (info.value.http_status, info.value.error_code) == (401, 200003)
    with client.acting_as("admin") as as_admin, pytest.raises(HopsworksRejected) as info:
        as_admin.add_member(project.id, "member@example.com")
    assert (info.value.http_status, info.value.error_code) == (403, 160000)
    assert set(hw.state.projects[project.id]["members"]) == {"owner@example.com"}


def test_each_key_opens_only_its_own_endpoints(hw: FakeHopsworks) -> None:
    auth_only = HopsworksClient(hw.url, hw.state.auth_api_key, retries=0)
    with pytest.raises(HopsworksRejected) as info:
        auth_only.list_users()  # UsersAdminResource: ADMIN or ADMINISTER_USERS
    assert (info.value.http_status, info.value.error_code) == (403, 320004)
    with pytest.raises(HopsworksRejected) as info:
        auth_only.create_project("hp_x", "nobody", "d")  # ProjectsAdminResource: ADMIN
    assert (info.value.http_status, info.value.error_code) == (403, 320004)
    assert auth_only.version() == (3, 8, 0)  # /variables/versions needs no key at all


def test_the_owner_adds_changes_and_removes_members_and_the_key_is_always_deleted(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    client.create_user("member@example.com", "M", "E")
    project = client.create_project("hp_abc", owner.username, "d")
    members = hw.state.projects[project.id]["members"]
    with client.acting_as(owner.username) as as_owner:
        assert hw.state.signing_keys  # a key exists while the session is open
        as_owner.add_member(project.id, "member@example.com")
        as_owner.add_member(project.id, "member@example.com")  # 400 150081 "already": success
        assert members["member@example.com"] == "Data scientist"
        as_owner.change_role(project.id, "member@example.com", "Data owner")
        assert members["member@example.com"] == "Data owner"
        as_owner.remove_member(project.id, "member@example.com")
        as_owner.remove_member(project.id, "member@example.com")  # 404 150023: success
        with pytest.raises(HopsworksRejected, match="was not found in the system") as info:
            as_owner.add_member(project.id, "nobody@example.com")
        assert (info.value.http_status, info.value.error_code) == (400, 150081)
    assert members == {"owner@example.com": "Data owner"}
    assert hw.state.signing_keys == set()
    with pytest.raises(RuntimeError), client.acting_as(owner.username):
        raise RuntimeError("the call in between failed")
    assert hw.state.signing_keys == set()
    deletes = [r for r in hw.state.requests if r[0] == "DELETE" and "/jwt/key/" in r[1]]
    assert len(deletes) == 2


def test_a_token_is_dead_once_its_signing_key_is_deleted(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_abc", owner.username, "d")
    with client.acting_as(owner.username) as as_owner:
        pass
    with pytest.raises(HopsworksRejected) as info:
        as_owner.remove_member(project.id, "x@example.com")
    assert info.value.http_status == 401


def test_owner_tokens_expire_in_minutes_even_when_their_key_is_left_behind(
    client: HopsworksClient, hw: FakeHopsworks, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_abc", owner.username, "d")
    before = time.time()
    with client.acting_as(owner.username):
        (expiry,) = hw.state.token_expiry.values()
    # the request's expiresAt, in DateTimeAdapter's format, not Hopsworks' 30-minute default
    assert before + OWNER_TOKEN_SECONDS - 2 <= expiry <= time.time() + OWNER_TOKEN_SECONDS + 1
    # a token past its expiry (and java-jwt's 60 s leeway) stops verifying, whether or not
    # DELETE /jwt/key succeeded afterwards
    monkeypatch.setattr(hopsworks_client, "OWNER_TOKEN_SECONDS", -120)
    with (client.acting_as(owner.username) as as_owner,
          pytest.raises(HopsworksRejected, match="HTTP 401") as info):
        as_owner.add_member(project.id, "owner@example.com")
    assert info.value.http_status == 401


def test_the_fake_refuses_an_expiry_hopsworks_cannot_parse(hw: FakeHopsworks) -> None:
    body = {"subject": "someone", "audiences": "api", "keyName": "k1",
            "expiresAt": "2026-12-01T00:00:00Z"}  # ISO, not yyyy-MM-dd'T'HH:mm:ss.SSSZ
    response = httpx.post(f"{hw.url}/hopsworks-api/api/jwt", json=body,
                          headers={"Authorization": f"ApiKey {hw.state.auth_api_key}"})
    assert response.status_code == 400
    assert hw.state.signing_keys == set()


def test_a_cluster_that_cannot_sign_tokens_is_misconfigured(hw: FakeHopsworks) -> None:
    owner = "someone"
    no_auth = HopsworksClient(hw.url, hw.state.api_key, None, retries=0)
    with pytest.raises(HopsworksMisconfigured, match="no AUTH API key"), no_auth.acting_as(owner):
        pass
    admin_as_auth = HopsworksClient(hw.url, hw.state.api_key, hw.state.api_key, retries=0)
    with pytest.raises(HopsworksMisconfigured, match="AUTH scope"), admin_as_auth.acting_as(owner):
        pass  # the admin key lacks AUTH: 403 320004
    hw.state.version = "3.5.0"
    old = HopsworksClient(hw.url, hw.state.api_key, hw.state.auth_api_key, retries=0)
    assert old.version() == (3, 5, 0)
    with pytest.raises(HopsworksMisconfigured), old.acting_as(owner):
        pass  # /jwt is JWT-only before 3.7: 401 "Authorization method not supported."
    assert hw.state.signing_keys == set()


def test_the_owner_finds_and_stops_running_workloads(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    hw.state.data_science_profile = True
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_abc", owner.username, "d")
    running = hw.run_job(project.id, "etl", owner.username)
    hw.run_job(project.id, "etl", owner.username, state="FINISHED")
    serving = hw.deploy(project.id, "fraud", owner.username)
    hw.deploy(project.id, "old", owner.username, status="Stopped")
    hw.start_jupyter(project.id, owner.username)
    with client.acting_as(owner.username) as as_owner:
        [execution] = as_owner.running_executions(project.id)
        assert (execution.ref, execution.job) == (str(running), "etl")
        assert execution.hopsworks_user == owner.username  # listed with expand=user
        as_owner.stop_execution(project.id, "etl", execution.ref)
        assert as_owner.running_executions(project.id) == []
        [deployment] = as_owner.running_deployments(project.id)
        assert deployment.ref == str(serving)
        assert (deployment.hopsworks_user, deployment.creator_name) == (None, "O W")
        as_owner.stop_deployment(project.id, deployment.ref)
        assert as_owner.running_deployments(project.id) == []
        assert as_owner.stop_own_jupyter(project.id) is True
        assert as_owner.stop_own_jupyter(project.id) is False  # 404 100033: none running


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


def test_a_member_3x_did_not_add_is_an_error_though_it_answers_200(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    hw.state.members_failure = "fieldErrors"  # 3.x before 3.7
    owner = client.create_user("owner@example.com", "O", "W")
    client.create_user("member@example.com", "M", "E")
    project = client.create_project("hp_abc", owner.username, "d")
    with client.acting_as(owner.username) as as_owner:
        as_owner.add_member(project.id, "member@example.com")
        as_owner.add_member(project.id, "member@example.com")  # fieldErrors "already": success
        with pytest.raises(HopsworksRejected, match="was not found in the system"):
            as_owner.add_member(project.id, "nobody@example.com")
    assert set(hw.state.projects[project.id]["members"]) == {"owner@example.com",
                                                            "member@example.com"}


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
    assert str(seen[0].url) == \
        "https://hw.example.com/hopsworks-api/api/admin/projects?expand=creator"


def test_a_cluster_without_the_data_science_profile_has_no_deployments(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    owner = client.create_user("owner@example.com", "O", "W")
    project = client.create_project("hp_abc", owner.username, "d")
    with client.acting_as(owner.username) as as_owner:
        assert as_owner.running_deployments(project.id) == []  # 400 120012: serving is off
    assert ("GET", f"/hopsworks-api/api/project/{project.id}/serving") in hw.state.requests


def test_project_quotas_are_set_at_creation_and_corrected_afterwards(
    client: HopsworksClient, hw: FakeHopsworks
) -> None:
    owner = client.create_user("owner@example.com", "O", "W", max_projects=1)
    member = client.create_user("member@example.com", "M", "X", max_projects=0)
    assert hw.state.users[owner.id]["maxNumProjects"] == 1
    # 0 in the create call means the cluster's default: a PUT sets it
    assert hw.state.users[member.id]["maxNumProjects"] == 0
    puts = [r for r in hw.state.requests if r[0] == "PUT"]
    assert puts == [("PUT", f"/hopsworks-api/api/admin/users/{member.id}")]
    project = client.create_project("hp_abc", owner.username, "d")
    # a repeat is refused for the quota before the name (150002): still the same project
    assert client.create_project("hp_abc", owner.username, "d") == project
    with pytest.raises(HopsworksRejected) as info:
        client.create_project("hp_other", owner.username, "d")
    assert (info.value.http_status, info.value.error_code) == (400, 150002)
    assert client.list_projects()[0].creator == owner.username  # listed with expand=creator

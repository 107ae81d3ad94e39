"""POST /webhook with real GitHub payload examples, signed with the test secret: what is
refused, what is ignored, and which job each routed event enqueues (read back from
procrastinate's own table)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.webhooks.app import MAX_BODY_BYTES
from tests.service.conftest import deliver, delivery_headers, example
from tests.statedb import query

pytestmark = pytest.mark.asyncio

Client = TestClient[Any, Any]
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def _jobs(conninfo: str) -> list[tuple[Any, ...]]:
    return query(
        conninfo,
        "SELECT task_name, args, lock, queueing_lock, status::text FROM procrastinate_jobs"
        " WHERE task_name LIKE 'migsafe.%%' AND task_name <> 'migsafe.retry_stalled_jobs'"
        " ORDER BY id",
    )


def _deliveries(conninfo: str) -> list[tuple[Any, ...]]:
    return query(conninfo, "SELECT delivery_id, event, action, job_ids FROM deliveries")


# -- refused ------------------------------------------------------------------------------------


async def _post_raw(client: Client, body: bytes, headers: dict[str, str]) -> int:
    response = await client.post("/webhook", data=body, headers=headers)
    return response.status


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "garbage", "sha1=abc"])
async def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(
    client: Client, state: str, signature: str | None
) -> None:
    body = json.dumps(example("pull_request.opened")).encode()
    headers = delivery_headers("pull_request", body)
    del headers["X-Hub-Signature-256"]
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    assert await _post_raw(client, body, headers) == 401
    assert _deliveries(state) == [] and _jobs(state) == []


async def test_a_signature_made_with_another_secret_is_401(client: Client, state: str) -> None:
    body = json.dumps(example("pull_request.opened")).encode()
    headers = delivery_headers("pull_request", body, secret="not-the-secret")
    assert await _post_raw(client, body, headers) == 401
    assert _deliveries(state) == [] and _jobs(state) == []


async def test_a_valid_sha1_signature_alone_is_not_enough(client: Client, state: str) -> None:
    """gidgethub's from_http would accept X-Hub-Signature (SHA-1); the app requires SHA-256."""
    import hashlib
    import hmac

    from tests.service.conftest import SECRET

    body = json.dumps(example("pull_request.opened")).encode()
    headers = delivery_headers("pull_request", body)
    del headers["X-Hub-Signature-256"]
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert await _post_raw(client, body, headers) == 401
    assert _jobs(state) == []


async def test_a_body_over_25_mb_is_413(client: Client, state: str) -> None:
    body = b'{"padding": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert await _post_raw(client, body, delivery_headers("pull_request", body)) == 413
    assert _deliveries(state) == []


async def test_malformed_json_is_400(client: Client, state: str) -> None:
    body = b'{"action": "opened", '
    assert await _post_raw(client, body, delivery_headers("pull_request", body)) == 400
    assert _deliveries(state) == []


async def test_a_missing_delivery_id_is_400(client: Client, state: str) -> None:
    body = json.dumps(example("pull_request.opened")).encode()
    headers = delivery_headers("pull_request", body)
    del headers["X-GitHub-Delivery"]
    assert await _post_raw(client, body, headers) == 400


# -- ignored ------------------------------------------------------------------------------------


async def test_an_unknown_event_is_202_and_nothing_is_stored(client: Client, state: str) -> None:
    status, answer = await deliver(client, "star", {"action": "created"})
    assert (status, answer["status"]) == (202, "ignored")
    assert _deliveries(state) == [] and _jobs(state) == []


@pytest.mark.parametrize("name", ["check_suite.requested", "check_run.completed"])
async def test_a_known_event_with_nothing_to_do_is_ignored(
    client: Client, state: str, name: str
) -> None:
    status, answer = await deliver(client, name.split(".")[0], example(name))
    assert (status, answer["status"]) == (202, "ignored")
    assert _deliveries(state) == []


async def test_ping_is_200_and_nothing_is_stored(client: Client, state: str) -> None:
    status, answer = await deliver(client, "ping", example("ping"))
    assert (status, answer["status"]) == (200, "pong")
    assert _deliveries(state) == []


# -- routed -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["pull_request.opened", "pull_request.synchronize", "pull_request.reopened"]
)
async def test_a_new_head_enqueues_a_check(client: Client, state: str, name: str) -> None:
    status, answer = await deliver(client, "pull_request", example(name), delivery_id="d-1")
    assert (status, answer["status"]) == (202, "accepted")
    [(task, args, lock, queueing_lock, job_status)] = _jobs(state)
    assert task == "migsafe.check_pull_request"
    assert args == {
        "repo": "Codertocat/Hello-World",
        "number": 2,
        "head_sha": HEAD,
        "delivery_id": "d-1",
        "installation_id": args["installation_id"],
        "trigger": name,
    }
    assert (lock, queueing_lock, job_status) == (
        "Codertocat/Hello-World#2",
        f"check:Codertocat/Hello-World#2@{HEAD}",
        "todo",
    )
    [(delivery_id, event, action, job_ids)] = _deliveries(state)
    assert (delivery_id, event, action, len(job_ids)) == ("d-1", "pull_request", name[13:], 1)
    assert query(state, "SELECT repo, number, head_sha FROM pull_requests") == [
        ("Codertocat/Hello-World", 2, HEAD)
    ]


async def test_ready_for_review_enqueues_a_check(client: Client, state: str) -> None:
    payload = example("pull_request.opened") | {"action": "ready_for_review"}
    await deliver(client, "pull_request", payload)
    assert [job[0] for job in _jobs(state)] == ["migsafe.check_pull_request"]


async def test_an_edit_checks_only_when_the_base_changed(client: Client, state: str) -> None:
    edited = example("pull_request.opened") | {"action": "edited", "changes": {"title": {}}}
    assert (await deliver(client, "pull_request", edited))[1]["status"] == "ignored"
    rebased = edited | {"changes": {"base": {"ref": {"from": "old-main"}}}}
    assert (await deliver(client, "pull_request", rebased))[1]["status"] == "accepted"
    assert [job[1]["trigger"] for job in _jobs(state)] == ["pull_request.edited"]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("pull_request", "pull_request.labeled"),
        ("pull_request", "unlabeled"),
        ("pull_request_review", "pull_request_review.submitted"),
        ("pull_request_review", "pull_request_review.dismissed"),
        ("pull_request_review", "edited"),
    ],
)
async def test_labels_and_reviews_enqueue_a_gate_evaluation(
    client: Client, state: str, event: str, name: str
) -> None:
    if "." in name:
        payload = example(name)
    else:  # no example of this action: the nearest one with the action changed
        base = (
            "pull_request.labeled" if event == "pull_request" else "pull_request_review.submitted"
        )
        payload = example(base) | {"action": name}
    status, _ = await deliver(client, event, payload)
    assert status == 202
    [(task, args, lock, queueing_lock, _status)] = _jobs(state)
    assert task == "migsafe.evaluate_gate"
    assert (args["number"], args["head_sha"], lock) == (2, HEAD, "Codertocat/Hello-World#2")
    assert queueing_lock == "gate:Codertocat/Hello-World#2"


def _comment_on_pull_request(body: str) -> dict[str, Any]:
    """The examples' comment is on an issue: a comment on a PR has `issue.pull_request`."""
    payload = copy.deepcopy(example("issue_comment.created.with-installation"))
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    payload["comment"]["body"] = body
    return payload


async def test_migsafe_rerun_on_a_pull_request_enqueues_the_command(
    client: Client, state: str
) -> None:
    payload = _comment_on_pull_request("Thanks!\n  /migsafe rerun  \n")
    status, _ = await deliver(client, "issue_comment", payload, delivery_id="c-1")
    assert status == 202
    [(task, args, _lock, _queueing_lock, _status)] = _jobs(state)
    assert task == "migsafe.rerun_command"
    assert args == {
        "repo": "Codertocat/Hello-World",
        "number": payload["issue"]["number"],
        "comment_id": payload["comment"]["id"],
        "commenter": "Codertocat",
        "delivery_id": "c-1",
        "installation_id": 1,
    }


@pytest.mark.parametrize(
    "payload_change",
    ["not a pull request", "no command", "command mid-sentence", "from a bot"],
)
async def test_other_comments_are_ignored(client: Client, state: str, payload_change: str) -> None:
    payload = _comment_on_pull_request("/migsafe rerun")
    if payload_change == "not a pull request":
        del payload["issue"]["pull_request"]
    elif payload_change == "no command":
        payload["comment"]["body"] = "LGTM"
    elif payload_change == "command mid-sentence":
        payload["comment"]["body"] = "please do not /migsafe rerun this"
    else:
        payload["comment"]["user"]["type"] = "Bot"
    status, answer = await deliver(client, "issue_comment", payload)
    assert (status, answer["status"]) == (202, "ignored")
    assert _jobs(state) == []


async def test_check_run_rerun_of_a_pull_request_checks_it(client: Client, state: str) -> None:
    payload = example("check_run.requested_action")
    await deliver(client, "check_run", payload)
    [(task, args, lock, _queueing_lock, _status)] = _jobs(state)
    assert task == "migsafe.check_pull_request"
    assert (args["repo"], args["number"]) == ("electron/electron", 26764)
    assert args["head_sha"] == payload["check_run"]["head_sha"]
    assert lock == "electron/electron#26764"


@pytest.mark.parametrize(
    ("event", "name"),
    [("check_run", "check_run.rerequested"), ("check_suite", "check_suite.rerequested")],
)
async def test_a_check_naming_no_pull_request_is_resolved_by_head_sha_later(
    client: Client, state: str, event: str, name: str
) -> None:
    payload = copy.deepcopy(example(name))
    payload[event]["pull_requests"] = []  # a fork's
    await deliver(client, event, payload)
    [(task, args, lock, _queueing_lock, _status)] = _jobs(state)
    head_sha = payload[event]["head_sha"]
    assert (task, args["number"], args["head_sha"]) == (
        "migsafe.check_pull_request",
        None,
        head_sha,
    )
    assert lock == f"{payload['repository']['full_name']}@{head_sha}"


async def test_check_suite_rerequested_checks_its_pull_requests(client: Client, state: str) -> None:
    payload = example("check_suite.rerequested")
    await deliver(client, "check_suite", payload)
    assert [(job[0], job[1]["number"]) for job in _jobs(state)] == [
        ("migsafe.check_pull_request", 2)
    ]


@pytest.mark.parametrize(
    ("event", "name"),
    [
        ("installation", "installation.created"),
        ("installation", "installation.deleted"),
        ("installation_repositories", "installation_repositories.added"),
    ],
)
async def test_installations_are_recorded_by_a_job(
    client: Client, state: str, event: str, name: str
) -> None:
    payload = example(name)
    await deliver(client, event, payload)
    [(task, args, _lock, _queueing_lock, _status)] = _jobs(state)
    assert task == "migsafe.record_installation"
    assert (args["installation_id"], args["action"]) == (payload["installation"]["id"], name)


async def test_membership_changes_forget_the_membership(client: Client, state: str) -> None:
    await deliver(client, "membership", example("membership.removed.with-installation"))
    [(task, args, _lock, _queueing_lock, _status)] = _jobs(state)
    assert task == "migsafe.forget_membership"
    assert (args["org"], args["team_slug"], args["login"]) == ("Octocoders", "github", "Codertocat")


# -- exactly once -------------------------------------------------------------------------------


async def test_a_redelivery_does_no_work_twice(client: Client, state: str) -> None:
    payload = example("pull_request.opened")
    first = await deliver(client, "pull_request", payload, delivery_id="same-id")
    again = await deliver(client, "pull_request", payload, delivery_id="same-id")
    assert (first[0], first[1]["status"]) == (202, "accepted")
    assert (again[0], again[1]["status"]) == (200, "duplicate")
    assert len(_jobs(state)) == 1 and len(_deliveries(state)) == 1


async def test_two_deliveries_for_the_same_head_share_one_queued_check(
    client: Client, state: str
) -> None:
    payload = example("pull_request.opened")
    first = await deliver(client, "pull_request", payload, delivery_id="push")
    second = await deliver(client, "pull_request", payload | {"action": "reopened"})
    assert first[1]["jobs"] == second[1]["jobs"]
    assert len(_jobs(state)) == 1 and len(_deliveries(state)) == 2


async def test_a_newer_head_gets_its_own_check(client: Client, state: str) -> None:
    payload = example("pull_request.synchronize")
    await deliver(client, "pull_request", payload)
    newer = copy.deepcopy(payload)
    newer["pull_request"]["head"]["sha"] = "f" * 40
    newer["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"
    await deliver(client, "pull_request", newer)
    assert [job[1]["head_sha"] for job in _jobs(state)] == [HEAD, "f" * 40]
    assert query(state, "SELECT head_sha FROM pull_requests") == [("f" * 40,)]


async def test_a_late_older_event_does_not_move_the_head_back(client: Client, state: str) -> None:
    newer = copy.deepcopy(example("pull_request.synchronize"))
    newer["pull_request"]["head"]["sha"] = "f" * 40
    newer["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"
    await deliver(client, "pull_request", newer)
    await deliver(client, "pull_request", example("pull_request.synchronize"))
    assert query(state, "SELECT head_sha FROM pull_requests") == [("f" * 40,)]


async def test_a_closed_pull_request_is_forgotten(client: Client, state: str) -> None:
    await deliver(client, "pull_request", example("pull_request.opened"))
    assert query(state, "SELECT count(*) FROM pull_requests") == [(1,)]
    status, answer = await deliver(client, "pull_request", example("pull_request.closed"))
    assert (status, answer["status"], answer["jobs"]) == (202, "accepted", [])
    assert query(state, "SELECT count(*) FROM pull_requests") == [(0,)]

"""What reaches /webhook: bad signatures are refused before anything is stored, and a
redelivery (same X-GitHub-Delivery) makes no second job and no second check run."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Bot, head_migration, seed_shop
from tests.fakegithub import payloads

pytestmark = pytest.mark.asyncio

RISKY = "0003_orders_cleanup.py"


@pytest.mark.parametrize(
    ("secret", "drop_signature"),
    [("not-the-secret", False), (None, True)],
    ids=["wrong", "missing"],
)
async def test_a_delivery_without_a_valid_signature_is_refused_and_not_stored(
    bot: Bot, secret: str | None, drop_signature: bool
) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    payload = payloads.pull_request_event(
        bot.fake, "opened", seeded.repo, seeded.pull, seeded.installation.id
    )
    status, _ = await bot.deliver(
        "pull_request",
        payload,
        secret=secret or "e2e-webhook-secret",
        drop_signature=drop_signature,
    )
    await bot.settle()
    assert status == 401
    assert bot.query("SELECT count(*) FROM deliveries") == [(0,)]
    assert bot.jobs() == []
    assert bot.fake.requests == []


async def test_a_redelivery_makes_one_job_and_one_check_run(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    payload = payloads.pull_request_event(
        bot.fake, "opened", seeded.repo, seeded.pull, seeded.installation.id
    )
    first = await bot.deliver("pull_request", payload, delivery_id="delivery-1")
    second = await bot.deliver("pull_request", payload, delivery_id="delivery-1")
    await bot.settle()
    third = await bot.deliver("pull_request", payload, delivery_id="delivery-1")
    await bot.settle()

    assert first[0] == 202 and first[1]["status"] == "accepted"
    assert [second[1]["status"], third[1]["status"]] == ["duplicate", "duplicate"]
    checks = [job for job in bot.jobs() if job[1] == "migsafe.check_pull_request"]
    assert [status for _, _, status in checks] == ["succeeded"]
    assert bot.query("SELECT delivery_id, job_ids FROM deliveries") == [
        ("delivery-1", [checks[0][0]])
    ]
    run = bot.check_run(seeded.head_sha)
    assert run.conclusion == "failure"
    assert len(bot.fake.requests_to("POST", "checks/create")) == 2  # the check and the gate


async def test_ping_is_answered_and_nothing_is_stored(bot: Bot) -> None:
    status, answer = await bot.deliver("ping", payloads.ping(bot.fake))
    assert (status, answer["status"]) == (200, "pong")
    assert bot.query("SELECT count(*) FROM deliveries") == [(0,)]


async def test_installation_events_are_recorded_by_a_job(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, head_migration(RISKY))
    created = payloads.installation_event(bot.fake, "created", seeded.installation)
    added = payloads.installation_repositories_event(
        bot.fake, seeded.installation, added=[seeded.repo]
    )
    assert (await bot.deliver("installation", created))[0] == 202
    assert (await bot.deliver("installation_repositories", added))[0] == 202
    await bot.settle()
    rows = bot.query("SELECT event, action, installation_id FROM deliveries ORDER BY event")
    assert rows == [
        ("installation", "created", seeded.installation.id),
        ("installation_repositories", "added", seeded.installation.id),
    ]
    assert [(task, status) for _, task, status in bot.jobs()] == [
        ("migsafe.record_installation", "succeeded"),
        ("migsafe.record_installation", "succeeded"),
    ]
    assert bot.fake.requests == []  # nothing to ask GitHub


async def test_metrics_count_the_github_calls_of_a_check(bot: Bot) -> None:
    seeded = seed_shop(bot.fake, {"app/models.py": "PAGE_SIZE = 100\n"})
    await bot.pull_request("opened", seeded)

    text = await (await bot.client.get("/metrics")).text()
    calls = 'migsafe_github_api_calls_total{route="/repos/{owner}/{repo}/check-runs",status="201"}'
    assert calls in text
    installation = f'migsafe_github_rate_limit_remaining{{installation="{seeded.installation.id}"'
    assert installation in text

"""app.yml asks GitHub for what the App uses, and the fake GitHub grants exactly that."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.webhooks.routers import ROUTER
from tests.fakegithub.server import APP_EVENTS, APP_PERMISSIONS

MANIFEST = Path(__file__).resolve().parents[1] / "bot" / "app.yml"


def test_the_fake_grants_what_the_manifest_asks_for() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["default_permissions"] == APP_PERMISSIONS
    assert sorted(manifest["default_events"]) == sorted(APP_EVENTS)


def test_every_event_the_manifest_subscribes_to_has_a_router() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    # gidgethub keeps no public list of its routes: read its two tables.
    routed = set(ROUTER._shallow_routes) | set(ROUTER._deep_routes)
    assert set(manifest["default_events"]) <= routed

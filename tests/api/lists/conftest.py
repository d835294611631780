"""Fixtures of the list tests: a fresh user's lists on the in-process app, and a second user."""

from __future__ import annotations

import httpx
import pytest

from tests.api.lists.client import ListClient


@pytest.fixture
def mine(app_client: httpx.Client, user: str) -> ListClient:
    return ListClient(app_client, user)


@pytest.fixture
def theirs(app_client: httpx.Client) -> ListClient:
    """Another user, with a token of their own."""
    return ListClient(app_client)

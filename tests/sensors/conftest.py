"""A virtual serial cable with stable paths on both ends (so both can reopen after it vanishes)."""

from __future__ import annotations

import pytest

from simulators.pty_link import PtyLink


@pytest.fixture
async def link(tmp_path):
    async with PtyLink(a_link=tmp_path / "gw-tty", b_link=tmp_path / "dev-tty", seed=7) as lk:
        yield lk

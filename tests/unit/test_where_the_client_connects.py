"""Which server and key a client uses when nothing is passed: ours, then W&B's variables (machines set up for
W&B export WANDB_BASE_URL and WANDB_API_KEY), then `modelreg login`."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelreg.transport import Transport


@pytest.fixture(autouse=True)
def no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("MODELREG_URL", "MODELREG_API_KEY", "WANDB_BASE_URL", "WANDB_API_KEY", "MODELREG_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_a_machine_set_up_for_w_and_b_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "http://registry.internal:8080/")
    monkeypatch.setenv("WANDB_API_KEY", "mr_wandb")
    transport = Transport()
    assert transport.url == "http://registry.internal:8080"
    assert transport._http.headers["Authorization"] == "Bearer mr_wandb"


def test_our_variables_win_over_w_and_bs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "http://wandb.example")
    monkeypatch.setenv("WANDB_API_KEY", "mr_wandb")
    monkeypatch.setenv("MODELREG_URL", "http://registry.internal")
    monkeypatch.setenv("MODELREG_API_KEY", "mr_ours")
    transport = Transport()
    assert (transport.url, transport._http.headers["Authorization"]) == ("http://registry.internal", "Bearer mr_ours")

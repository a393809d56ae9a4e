"""Board addresses, inventories and target matching: the parts of deploy that need no board."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefit import targets
from edgefit.errors import UserError
from edgefit.runtime.board import profiles, rootfs
from edgefit.runtime.deploy import boards, probe
from edgefit.runtime.deploy.ssh import BoardAddress


def test_board_address_parsing() -> None:
    assert BoardAddress.parse("pi@raspberrypi.local") == BoardAddress("pi", "raspberrypi.local", 22)
    a = BoardAddress.parse("pi@127.0.0.1:2222")
    assert (a.port, a.known_hosts_name) == (2222, "[127.0.0.1]:2222")
    assert BoardAddress.parse("nvidia@[::1]:22").host == "::1"
    for bad in ("raspberrypi", "pi@host:0", "pi@host:99999", "pi@ho st", "@host"):
        with pytest.raises(UserError):
            BoardAddress.parse(bad)


def test_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "boards.toml"
    key = tmp_path / "id_test"
    key.write_text("not a real key: never read by this test\n")
    inv.write_text(
        f'[boards.pi-kitchen]\naddress = "pi@10.0.0.7:2200"\ntarget = "rpi4"\nidentity = "{key}"\n'
    )
    conn, entry = boards.resolve(boards_file=str(inv), name="pi-kitchen", known_hosts=str(tmp_path / "kh"))
    assert (conn.address.host, conn.address.port, entry.target, conn.identity) == (
        "10.0.0.7",
        2200,
        "rpi4",
        key,
    )
    with pytest.raises(UserError, match=r"identity file .* not found"):
        boards.resolve(boards_file=str(inv), name="pi-kitchen", identity=str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"no board 'pi-garage'.*pi-kitchen"):
        boards.resolve(boards_file=str(inv), name="pi-garage")
    inv.write_text("[boards.x]\nuser = 'pi'\n")
    with pytest.raises(UserError, match="needs address"):
        boards.load_inventory(inv)
    with pytest.raises(UserError, match="which board"):
        boards.resolve()


def _facts(target: str) -> probe.BoardFacts:
    """What an emulated board of `target` reports (the same data the rootfs writes)."""
    prof = profiles.profile(target)
    import re

    return probe.BoardFacts(
        arch="aarch64",
        cpu_parts=tuple(re.findall(r"CPU part\s*:\s*(\S+)", prof.cpuinfo())),
        model=prof.model,
        tegra_release=prof.tegra_release,
        python="3.11",
        current="",
        previous="",
    )


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_every_emulated_profile_matches_its_target_only(name: str) -> None:
    facts = _facts(name)
    assert probe.mismatches(targets.load(name), facts) == []
    others = [t for t in profiles.PROFILES if t != name]
    for other in others:
        assert probe.mismatches(targets.load(other), facts), f"a {name} board passed as {other}"
    assert "architecture aarch64" in probe.mismatches(targets.load("x86_64"), facts)[0]


def test_jetson_needs_its_l4t_release() -> None:
    facts = _facts("jetson-orin-nano")
    old = probe.BoardFacts(**{**facts.__dict__, "tegra_release": "# R35 (release), REVISION: 3.1"})
    assert any("L4T release" in p for p in probe.mismatches(targets.load("jetson-orin-nano"), old))


def test_pip_selects_every_manylinux_aarch64_tag() -> None:
    args = rootfs.pip_target_args("3.11")
    tags = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert (
        "manylinux2014_aarch64" in tags
        and "manylinux_2_28_aarch64" in tags
        and "manylinux_2_36_aarch64" in tags
    )
    assert all(t.endswith("aarch64") for t in tags) and "--only-binary=:all:" in args and "cp311" in args

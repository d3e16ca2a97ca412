"""The scanner simulator's own surface: noise settings, script files, the CLI command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.domain import BarcodeScan, ScanKind
from tagsweep.drivers import open_driver
from tagsweep.simulators.scanner import Noise, ScanLine, load_script


def test_noise_spec_parses_every_setting() -> None:
    noise = Noise.parse("garbage=2.5, split=0.3,terminators,disconnect=0.05,truncate=0.01,seed=7")
    assert noise == Noise(
        garbage=2.5, split=0.3, terminators=True, disconnect=0.05, truncate=0.01, seed=7
    )
    assert Noise.parse("") == Noise()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("garbge=1", "unknown noise setting 'garbge'"),
        ("split=2", "probability"),
        ("split", "needs a value"),
        ("seed=x", "not a number"),
        ("garbage=-1", "negative"),
    ],
)
def test_bad_noise_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Noise.parse(spec)


def test_script_file_comments_pauses_and_group_separators(tmp_path: Path) -> None:
    path = tmp_path / "count.scan"
    path.write_text("# room 302\nLOC:DC1/Room 302\n\nsleep 0.5\n]C101095060001343521A<GS>8004X\n")
    assert load_script(path, interval_s=0.1) == [
        ScanLine("LOC:DC1/Room 302", 0.1),
        ScanLine("]C101095060001343521A\x1d8004X", 0.6),
    ]


def test_script_file_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.scan"
    path.write_text("IT-1\nsleep soon\n")
    with pytest.raises(ValueError, match=r"bad\.scan:2: expected 'sleep SECONDS'"):
        load_script(path)


def test_cli_needs_exactly_one_transport(tmp_path: Path) -> None:
    path = tmp_path / "s.scan"
    path.write_text("IT-1\n")
    result = CliRunner().invoke(app, ["sim", "scanner", "--script", str(path)])
    assert result.exit_code == 2
    assert "exactly one of --pty or --tcp" in result.output


@pytest.mark.parametrize("transport", [["--pty"], ["--tcp", "0"]])
async def test_cli_scanner_serves_a_script_to_the_driver(
    tmp_path: Path, transport: list[str]
) -> None:
    path = tmp_path / "count.scan"
    path.write_text("LOC:DC1/Room 302\nIT-00042\n]C18004095060001ASSET5\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tagsweep.cli", "sim", "scanner", *transport,
        "--script", str(path), "--interval", "0", "--noise", "garbage=1,seed=2",
        "--exit-when-done",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            url = (await proc.stdout.readline()).decode().strip()
        assert url.startswith("serial:///" if transport == ["--pty"] else "socket://127.0.0.1:")
        driver = open_driver(url, name="cli")
        scans: list[BarcodeScan] = []
        async with asyncio.timeout(15):
            async for event in driver:
                assert isinstance(event, BarcodeScan)
                scans.append(event)
                if len(scans) == 3:
                    break
        await driver.close()
        async with asyncio.timeout(15):
            _, err = await proc.communicate()
        assert proc.returncode == 0
        assert "done: 3 scans, 3 garbage lines" in err.decode()
        assert driver.counters.decode_errors == 3
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert [(s.kind, s.value) for s in scans] == [
        (ScanKind.LOCATION, "DC1/Room 302"),
        (ScanKind.ASSET_TAG, "IT-00042"),
        (ScanKind.GIAI, "095060001ASSET5"),
    ]

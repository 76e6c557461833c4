"""`qconnect check` on real files: errors name file, line and field (or block and file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "flows" / "fixtures"


def check(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "telephony.cli", "check", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exported_flow_with_unsupported_block_fails_naming_it() -> None:
    flow = FIXTURES / "exported_inbound_with_lambda.json"
    result = check(flow)
    assert result.returncode == 1
    assert "InvokeLambdaFunction" in result.stdout and str(flow) in result.stdout


def test_broken_config_fails_with_file_line_and_field(tmp_path: Path) -> None:
    config = tmp_path / "lab.yaml"
    config.write_text(
        "name: broken\n"
        "agents:\n"
        "  john:\n"
        "    password: john\n"
        "    routing_profile: Nowhere\n"
        "routing_profiles:\n"
        "  Basic:\n"
        "    queues: [BasicQueue]\n"
        "    default_outbound_queue: BasicQueue\n"
        "queues:\n"
        "  BasicQueue:\n"
        "    outbound_caller_id: {name: Example, number: 'not-a-number'}\n"
    )
    result = check(config)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    # Every structural error at once, each with its line and field path.
    assert any(line.startswith(f"{config}:3: agents.john.display_name") for line in lines), lines
    assert any(
        line.startswith(f"{config}:12: queues.BasicQueue.outbound_caller_id.number")
        for line in lines
    ), lines
    # Once the structure is valid, references are checked: the unknown routing profile.
    text = config.read_text().replace(
        "    password: john\n", "    display_name: John\n    password: john\n"
    )
    config.write_text(text.replace("'not-a-number'", "'+15550100'"))
    lines = check(config).stdout.splitlines()
    assert any(line.startswith(f"{config}:6:") and "Nowhere" in line for line in lines), lines


def test_demo_lab_and_default_flows_pass() -> None:
    from telephony.center.config import DEMO_LAB_PATH

    flows = sorted((Path(__file__).resolve().parents[2] / "flows" / "defaults").glob("*.json"))
    result = check(DEMO_LAB_PATH, *flows)
    assert result.returncode == 0, result.stdout

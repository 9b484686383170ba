"""What ops/ ships, checked with Prometheus' own tool: the /metrics scrape, the alert rules and their unit
tests (``promtool``), and the Grafana dashboard's data-source input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_metrics import exported_names, full_scrape

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "ops"


def promtool(*args: str, stdin: str | None = None, cwd: Path = OPS) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package has it; .ci/run unpacks it)")
    return subprocess.run([tool, *args], input=stdin, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_promtool_finds_nothing_to_say_about_the_scrape(tmp_path: Path) -> None:
    done = promtool("check", "metrics", stdin=full_scrape(tmp_path))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    # The check is not a formality: a gauge named like a counter, as t2f_queue_depth_total was, fails it.
    done = promtool(
        "check",
        "metrics",
        stdin="# HELP t2f_waiting_total Faces.\n# TYPE t2f_waiting_total gauge\nt2f_waiting_total 1\n",
    )
    assert done.returncode != 0 and 'non-counter metrics should not have "_total" suffix' in done.stdout + done.stderr


def test_the_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "alerts.yaml")
    assert checked.returncode == 0 and "SUCCESS: 5 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "alerts.test.yaml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_alerts_cover_the_four_failures_and_read_only_metrics_that_exist(tmp_path: Path) -> None:
    rules = [
        rule
        for group in yaml.safe_load((OPS / "alerts.yaml").read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    assert {"T2FQueueStuck", "T2FGpuThreadStalled", "T2FErrorRateHigh", "T2FDiskNearlyFull"} <= {
        r["alert"] for r in rules
    }
    used = {name for rule in rules for name in re.findall(r"\bt2f_[a-z_]+", rule["expr"])}
    assert used and used <= exported_names(tmp_path), used - exported_names(tmp_path)
    tested = {
        test["alertname"]
        for case in yaml.safe_load((OPS / "alerts.test.yaml").read_text(encoding="utf-8"))["tests"]
        for test in case["alert_rule_test"]
    }
    assert tested == {r["alert"] for r in rules}  # every alert has a case that fires it


def test_the_dashboard_asks_for_its_prometheus_data_source_on_import() -> None:
    """Grafana's import form offers a data-source picker only for a dashboard with `__inputs`."""
    text = (OPS / "grafana-dashboard.json").read_text(encoding="utf-8")
    dashboard = json.loads(text)
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == ("DS_PROMETHEUS", "datasource", "prometheus")
    assert dashboard["id"] is None  # an import makes a new dashboard
    wanted = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in dashboard["panels"]:
        assert panel["datasource"] == wanted, panel["title"]
        assert all(target["datasource"] == wanted for target in panel["targets"]), panel["title"]
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"DS_PROMETHEUS"}  # no other variable left to resolve

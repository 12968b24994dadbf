"""kill -9 mid-run then rerun: no repeated calls for finished requests, identical records.
Plus the CLI's one-line errors for bad input."""

from __future__ import annotations

import json
import signal
import time

import pytest

from emocurate.cli import main
from emocurate.configs import GenerateConfig
from emocurate.generators.run import plan_requests, run_generation
from emocurate.io import read_records
from emocurate.records import Story
from tests.fakes.llm_servers import fake_anthropic_server
from tests.generators.helpers import comparable, start_generation


@pytest.mark.slow
def test_kill_9_then_resume_repeats_no_finished_call(tmp_path):
    with fake_anthropic_server(latency_s=0.08) as srv:
        cfg = GenerateConfig(
            kind="stories",
            backend="anthropic",
            model="claude-sonnet-4-6",
            base_url=srv.base_url,
            emotions="happy,sad,afraid,calm",
            topics="3",
            per_topic=6,
            per_request=2,
            concurrency=3,
            progress=False,
        )
        out = tmp_path / "killed"
        cache = out / "cache" / "responses.jsonl"
        child = start_generation(cfg, out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cache.exists() and cache.read_text().count("\n") >= 10:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert not (out / "manifest.json").exists()  # killed before the end
        done_ids = {
            json.loads(x)["custom_id"]
            for x in cache.read_text().splitlines()
            if x.strip().endswith("}")
        }
        planned = plan_requests(cfg)
        assert 10 <= len(done_ids) < len(planned) == 36
        user_of = {r.custom_id: r.messages[0].content for r in planned}
        srv.reset_stats()
        m = run_generation(cfg, out)  # same command again
        resent = set(srv.stats.user_texts)
        assert not resent & {user_of[c] for c in done_ids}, "a finished request was sent again"
        assert m.cached_requests == len(done_ids) and m.completed_requests == 36
        assert srv.stats.calls == 36 - len(done_ids)
        resumed = read_records(out, Story)
    with fake_anthropic_server(latency_s=0.001) as fresh:  # an uninterrupted run, same server state
        m2 = run_generation(
            cfg.model_copy(update={"base_url": fresh.base_url}), tmp_path / "straight"
        )
        assert m2.cached_requests == 0
    straight = read_records(tmp_path / "straight", Story)
    assert len(resumed) == 72 and comparable(resumed) == comparable(straight)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    err = capsys.readouterr().err.strip()
    return int(info.value.code or 0), err


def test_cli_bad_input_one_liners(tmp_path, capsys, monkeypatch):
    base = ["generate", "stories", "--out", str(tmp_path / "o"), "--backend", "fake"]
    code, err = run_cli([*base, "--emotions", "happy,glorbish"], capsys)
    assert (
        code == 2
        and err == "error: unknown emotion 'glorbish' (see `emocurate emotions` for the 171 names)"
    )
    empty = tmp_path / "topics.txt"
    empty.write_text("# nothing here\n\n")
    code, err = run_cli([*base, "--topics", str(empty)], capsys)
    assert code == 2 and err.startswith("error: topic file") and "no topics" in err
    assert len(err.splitlines()) == 1
    with fake_anthropic_server() as srv:
        code, err = run_cli(
            [
                "generate",
                "stories",
                "--out",
                str(tmp_path / "b"),
                "--backend",
                "anthropic",
                "--base-url",
                srv.base_url,
                "--budget-usd",
                "0.0001",
                "--emotions",
                "happy",
                "--topics",
                "1",
            ],
            capsys,
        )
        assert srv.stats.calls == 0
    assert (
        code == 3
        and "below the estimated cost of one request" in err
        and len(err.splitlines()) == 1
    )
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    code, err = run_cli(
        ["generate", "stories", "--out", str(tmp_path / "c"), "--backend", "anthropic"], capsys
    )
    assert (
        code == 2
        and err == "error: anthropic backend: no API key (set ANTHROPIC_API_KEY in the environment)"
    )


def test_cli_unreachable_base_url_is_one_line(tmp_path, capsys):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    code, err = run_cli(
        [
            "generate",
            "neutral",
            "--out",
            str(tmp_path / "o"),
            "--backend",
            "openai",
            "--model",
            "local-model",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--topics",
            "1",
            "--per-topic",
            "2",
        ],
        capsys,
    )
    assert code == 2 and err.startswith(f"error: cannot reach http://127.0.0.1:{port}/v1")
    assert len(err.splitlines()) == 1


def test_cli_dry_run_and_fake_run(tmp_path, capsys):
    main(
        [
            "generate",
            "dialogues",
            "--dry-run",
            "--out",
            str(tmp_path / "d"),
            "--topics",
            "presets",
            "--person-emotions",
            "afraid,desperate",
            "--assistant-emotions",
            "calm",
            "--per-topic",
            "4",
        ]
    )
    plan = json.loads(capsys.readouterr().out)
    assert plan["planned_requests"] == 12 and plan["estimated_usd_max"] > 0
    assert not (tmp_path / "d").exists()
    main(
        [
            "generate",
            "regulation",
            "--backend",
            "fake",
            "--model",
            "fake-model",
            "--emotions",
            "desperate",
            "--topics",
            "2",
            "--per-topic",
            "3",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert "regulation: 9 records" in capsys.readouterr().out  # 2 topics + 1 AI case, x3


def test_budget_stops_cleanly_with_partial_output(tmp_path, capsys):
    with fake_anthropic_server() as srv:
        cfg = GenerateConfig(
            kind="stories",
            backend="anthropic",
            model="claude-sonnet-4-6",
            base_url=srv.base_url,
            emotions="happy,sad",
            topics="3",
            per_topic=4,
            per_request=4,
            concurrency=1,
            budget_usd=0.045,
            progress=False,
        )
        m = run_generation(cfg, tmp_path)
    assert m.budget_reached and 0 < m.completed_requests < 6
    assert m.usd.spent_this_run <= 0.045
    assert len(read_records(tmp_path, Story)) == m.records == 4 * m.completed_requests


def test_dry_run_warns_when_the_plan_exceeds_the_budget(tmp_path, capsys):
    args = ["generate", "stories", "--dry-run", "--out", str(tmp_path / "s"), "--emotions"]
    main([*args, "happy", "--topics", "5", "--per-topic", "12", "--budget-usd", "0.01"])
    out, err = capsys.readouterr()
    assert json.loads(out)["estimated_usd_max"] > 0.01
    assert err.startswith("warning: the plan's worst case $") and "--budget-usd $0.01" in err
    main([*args, "happy", "--topics", "1", "--per-topic", "1", "--budget-usd", "100"])
    assert "warning" not in capsys.readouterr().err

"""titan_sdk.agents: rules that read logs, a model asked through a command or a URL, and the fallback."""

from __future__ import annotations

import http.server
import json
import sys
import threading

import pytest

from titan_sdk.agents import (ESCALATE, NONE, PATCH, RERUN, LLMDecider, LLMError, Remedy, RuleDecider, Rule,
                              configured_decider, configured_llm, parse_remedy)

RULES = [
    Rule(r"CUDA out of memory", lambda m, c: Remedy(RERUN, "gpu memory", "GENERAL")),
    Rule(r"No module named '(\w+)'", lambda m, c: None if m[1] == "ignored" else Remedy(ESCALATE, m[1])),
    Rule(r"MemoryError", lambda m, c: Remedy(RERUN, "host memory", "HIGH_MEMORY")),
]


def model_command(tmp_path, answer: str, exit_code: int = 0) -> str:
    """A stand-in model: a real command that reads the prompt on stdin and prints `answer`."""
    path = tmp_path / "model.py"
    path.write_text(f"import sys\nprompt = sys.stdin.read()\nprint({answer!r})\nsys.exit({exit_code})\n")
    return f"{sys.executable} {path}"


def test_rules_decide_in_order_and_a_rule_may_decline():
    decider = RuleDecider(RULES)
    assert decider.decide("torch.cuda.OutOfMemoryError: CUDA out of memory").requirement == "GENERAL"
    assert decider.decide("MemoryError: 48 GiB").requirement == "HIGH_MEMORY"
    assert decider.decide("No module named 'torch'") == Remedy(ESCALATE, "torch")
    declined = decider.decide("No module named 'ignored'\nMemoryError")
    assert declined.reason == "host memory", "a rule returning None lets later rules decide"
    assert decider.decide("all fine").action == NONE


def test_parse_remedy_takes_the_json_out_of_chatter():
    remedy = parse_remedy('Here you go:\n{"action": "PATCH", "reason": "typo", "patch": ["a", "b"]}\nBye')
    assert remedy == Remedy(PATCH, "typo", patch=("a", "b"), source="llm")


@pytest.mark.parametrize("answer", [
    "no json at all", '{"action": "EXPLODE", "reason": "x"}', '{"action": "RERUN"}',
    '{"action": "PATCH", "reason": "x", "patch": "just one string"}', "{not json}",
])
def test_parse_remedy_refuses_answers_without_a_usable_remedy(answer):
    with pytest.raises(LLMError):
        parse_remedy(answer)


def test_a_configured_command_model_decides(tmp_path):
    command = model_command(tmp_path, '{"action": "RERUN", "reason": "model", "requirement": "GPU"}')
    decider = configured_decider("fix it", RULES, environ={"TITAN_LLM_COMMAND": command})
    assert isinstance(decider, LLMDecider)
    assert decider.decide("MemoryError") == Remedy(RERUN, "model", "GPU", source="llm")


@pytest.mark.parametrize("answer, exit_code, problem", [
    ("I cannot help", 0, "holds no remedy"),
    ("", 3, "exited with 3"),
])
def test_a_failing_model_falls_back_to_the_rules_and_says_so(tmp_path, answer, exit_code, problem):
    command = model_command(tmp_path, answer, exit_code)
    remedy = configured_decider("fix it", RULES, environ={"TITAN_LLM_COMMAND": command}).decide("MemoryError")
    assert (remedy.action, remedy.requirement) == (RERUN, "HIGH_MEMORY")
    assert remedy.source.startswith("rules (llm failed:") and problem in remedy.source


def test_without_configuration_the_rules_decide():
    assert isinstance(configured_decider("x", RULES, environ={}), RuleDecider)
    assert configured_llm({}) is None


def test_an_openai_compatible_url_is_asked_with_the_prompt():
    seen = []

    class ChatCompletions(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            body = json.dumps({"choices": [{"message": {"content": '{"action": "NONE", "reason": "ok"}'}}]})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), ChatCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        decider = configured_decider("the instructions", RULES,
                                     environ={"TITAN_LLM_URL": url, "TITAN_LLM_MODEL": "tiny"})
        assert decider.decide("some logs", {"script.py": "print(1)"}) == Remedy(NONE, "ok", source="llm")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    [(path, request)] = seen
    prompt = request["messages"][0]["content"]
    assert path == "/v1/chat/completions" and request["model"] == "tiny"
    assert "the instructions" in prompt and "some logs" in prompt and "print(1)" in prompt

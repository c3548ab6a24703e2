"""One small interface for agents that read a job's logs and decide what to do about them.

    decider = configured_decider(INSTRUCTIONS, RULES)   # an LLM when configured, else the rules
    remedy = decider.decide(client.fetch_logs(job_id))
    if remedy.action == RERUN: ...                      # on remedy.requirement
    if remedy.action == PATCH: ...                      # remedy.patch = (old text, new text)

It lives in the SDK, not in examples/, because agents run as jobs: a job script can import what is
installed on the worker (titan_sdk), not files beside the script that submitted it.

An LLM is used only when configured, never required:
  TITAN_LLM_COMMAND  a command that reads the prompt on stdin and prints the answer, e.g.
                     "ollama run llama3" or "llm -m gpt-4o-mini";
  TITAN_LLM_URL      an OpenAI-compatible base URL (".../v1"), with TITAN_LLM_MODEL and TITAN_LLM_API_KEY.
Its answer must contain one JSON object with the fields of Remedy. If it fails or answers nonsense, the
rules decide instead, and the remedy's `source` says so.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import urllib.request
from dataclasses import dataclass, fields, replace
from typing import Callable, Mapping, Optional, Protocol, Sequence, Tuple

RERUN = "RERUN"          # run the job again on `requirement`
PATCH = "PATCH"          # replace patch[0] by patch[1] in the script, then test again
ESCALATE = "ESCALATE"    # nothing a machine should do: a person must act (the reason says what)
NONE = "NONE"            # no known problem in the logs
ACTIONS = (RERUN, PATCH, ESCALATE, NONE)

LLM_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Remedy:
    action: str
    reason: str
    requirement: Optional[str] = None
    patch: Optional[Tuple[str, str]] = None
    source: str = "rules"      # "rules", "llm", or "rules (llm failed: ...)"


class Decider(Protocol):
    def decide(self, logs: str, context: Optional[Mapping[str, str]] = None) -> Remedy:
        """What to do about a job whose output is `logs`; `context` holds extra text, e.g. the script."""


@dataclass(frozen=True)
class Rule:
    """`pattern` (a regex) searched in the logs; `remedy(match, context)` builds the remedy (the logs are
    `match.string`), or returns None when the rule cannot help after all (then later rules are tried)."""

    pattern: str
    remedy: Callable[[re.Match, Mapping[str, str]], Optional[Remedy]]


class RuleDecider:
    """The first rule whose pattern is in the logs and that yields a remedy decides."""

    def __init__(self, rules: Sequence[Rule]):
        self.rules = list(rules)

    def decide(self, logs: str, context: Optional[Mapping[str, str]] = None) -> Remedy:
        for rule in self.rules:
            match = re.search(rule.pattern, logs)
            remedy = rule.remedy(match, context or {}) if match else None
            if remedy is not None:
                return remedy
        return Remedy(NONE, "no known failure signature in the logs")


class LLMError(RuntimeError):
    """The model could not be asked, or its answer holds no usable remedy."""


class LLM:
    """A language model asked through a command (prompt on stdin) or an OpenAI-compatible URL."""

    def __init__(self, command: Optional[str] = None, url: Optional[str] = None, model: Optional[str] = None,
                 api_key: Optional[str] = None):
        if not command and not url:
            raise ValueError("an LLM needs a command or a URL")
        self.command, self.url, self.model, self.api_key = command, url, model, api_key

    def ask(self, prompt: str) -> str:
        return self._ask_command(prompt) if self.command else self._ask_url(prompt)

    def _ask_command(self, prompt: str) -> str:
        try:
            done = subprocess.run(shlex.split(self.command), input=prompt, capture_output=True, text=True,
                                  timeout=LLM_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LLMError(f"{self.command!r} could not be run: {exc}") from None
        if done.returncode != 0:
            raise LLMError(f"{self.command!r} exited with {done.returncode}: {done.stderr.strip()[:200]}")
        return done.stdout

    def _ask_url(self, prompt: str) -> str:
        body = json.dumps({"model": self.model or "gpt-4o-mini",
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        request = urllib.request.Request(self.url.rstrip("/") + "/chat/completions", data=body,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.api_key or ''}"})
        try:
            with urllib.request.urlopen(request, timeout=LLM_TIMEOUT_S) as response:
                return json.load(response)["choices"][0]["message"]["content"]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"{self.url} did not answer usably: {exc}") from None


def configured_llm(environ: Mapping[str, str] = os.environ) -> Optional[LLM]:
    """The model TITAN_LLM_COMMAND or TITAN_LLM_URL (+ TITAN_LLM_MODEL, TITAN_LLM_API_KEY) names, if any."""
    command, url = environ.get("TITAN_LLM_COMMAND"), environ.get("TITAN_LLM_URL")
    if not command and not url:
        return None
    return LLM(command=command, url=url, model=environ.get("TITAN_LLM_MODEL"),
               api_key=environ.get("TITAN_LLM_API_KEY"))


class LLMDecider:
    """Asks a language model for the remedy; falls back to `fallback` when that fails."""

    def __init__(self, instructions: str, llm: LLM, fallback: Decider):
        self.instructions, self.llm, self.fallback = instructions, llm, fallback

    def decide(self, logs: str, context: Optional[Mapping[str, str]] = None) -> Remedy:
        try:
            return parse_remedy(self.llm.ask(self.prompt(logs, context or {})))
        except LLMError as exc:
            remedy = self.fallback.decide(logs, context)
            return replace(remedy, source=f"rules (llm failed: {exc})")

    def prompt(self, logs: str, context: Mapping[str, str]) -> str:
        parts = [self.instructions, 'Answer with one JSON object: {"action": one of '
                 f'{list(ACTIONS)}, "reason": "...", "requirement": "..." or null, '
                 '"patch": ["old text", "new text"] or null}.']
        parts += [f"--- {name} ---\n{text}" for name, text in context.items()]
        parts.append(f"--- logs ---\n{logs}")
        return "\n\n".join(parts)


def parse_remedy(answer: str) -> Remedy:
    """The first JSON object in a model's answer, as a Remedy."""
    start, end = answer.find("{"), answer.rfind("}")
    try:
        raw = json.loads(answer[start:end + 1]) if 0 <= start < end else None
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or raw.get("action") not in ACTIONS or not isinstance(raw.get("reason"), str):
        raise LLMError(f"the answer holds no remedy: {answer.strip()[:200]!r}")
    known = {f.name for f in fields(Remedy)} - {"source"}
    remedy = {key: value for key, value in raw.items() if key in known}
    patch = remedy.get("patch")
    if patch is not None:
        if not (isinstance(patch, list) and len(patch) == 2 and all(isinstance(p, str) for p in patch)):
            raise LLMError(f"'patch' must be [old text, new text], got {patch!r}")
        remedy["patch"] = tuple(patch)
    return Remedy(**remedy, source="llm")


def configured_decider(instructions: str, rules: Sequence[Rule],
                       environ: Mapping[str, str] = os.environ) -> Decider:
    """An LLMDecider (falling back to the rules) when a model is configured, else a RuleDecider."""
    llm = configured_llm(environ)
    return RuleDecider(rules) if llm is None else LLMDecider(instructions, llm, RuleDecider(rules))

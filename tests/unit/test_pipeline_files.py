"""YAML pipeline files: what is accepted, and errors that name the file, the job and the line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import textwrap

import pytest

from titan_sdk import PipelineError, load_pipeline
from titan_sdk.pipeline import PipelineWarning

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "yaml_pipelines")


@pytest.fixture
def pipeline_file(tmp_path):
    (tmp_path / "step.py").write_text("print('step')\n")

    def write(text: str) -> str:
        path = tmp_path / "pipeline.yaml"
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


def test_example_diamond_loads_with_every_field(tmp_path):
    pipeline = load_pipeline(os.path.join(EXAMPLES, "diamond.yaml"))
    assert pipeline.name == "yaml_diamond"
    assert [job.job_id for job in pipeline.jobs] == ["prepare", "left", "right", "join"]
    join, right, prepare = pipeline.jobs[3], pipeline.jobs[2], pipeline.jobs[0]
    assert join.parents == ["left", "right"] and prepare.priority == 5 and prepare.args == "prepare"
    assert (right.retries, right.timeout) == (1, 60)
    assert join.filename == os.path.join(os.path.abspath(EXAMPLES), "step.py") and join.script.startswith(b'"""')


def test_scalars_lists_and_types(pipeline_file):
    pipeline = load_pipeline(pipeline_file("""
        name: p
        jobs:
          - {id: a, file: step.py, args: [--n, 3], type: run, delay: 0.5, requirement: GPU}
          - {id: b, file: step.py, depends_on: a, affinity: true, port: 0, max_wait_seconds: 60}
        """))
    a, b = pipeline.jobs
    assert a.args == "--n 3" and a.job_type == "RUN_PAYLOAD" and a.to_spec().delay == 0.5 and a.requirement == "GPU"
    assert b.parents == ["a"] and b.affinity is True and b.max_wait_seconds == 60


@pytest.mark.parametrize("body, message", [
    ("jobs: []\n", r"line 1, the pipeline: missing 'name'"),
    ("name: p\njobs: []\n", r"line 2, the pipeline: 'jobs' is empty"),
    ("name: p\njobs: [{id: a, file: step.py}]\nnmae: q\n", r"line 3, the pipeline: unknown key 'nmae'; did you mean 'name'"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n  - id: b\n    file: step.py\n    priorty: 5\n",
     r"line 7, job 'b': unknown key 'priorty'; did you mean 'priority'"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    depnds_on: [b]\n", r"did you mean 'depends_on'"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    requirment: GPU\n", r"did you mean 'requirement'"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    priority: '5x'\n", r"'priority' must be int, got str"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    priority: high\n", r"line 5, job 'a': 'priority' must be int"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    retries: true\n", r"line 5, job 'a': 'retries' must be int"),
    ("name: p\njobs:\n  - id: a\n", r"line 3, job 'a': missing 'file'"),
    ("name: p\njobs:\n  - file: step.py\n", r"line 3, job #1: missing 'id'"),
    ("name: p\njobs:\n  - id: a\n    file: nowhere.py\n", r"line 4, job 'a': script 'nowhere.py' not found"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    type: batch\n", r"line 5, job 'a': 'type' must be one of"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    depends_on: [1]\n", r"line 5, job 'a': 'depends_on' must list"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    type: service\n",
     r"line 5, job 'a': 'type: service' needs the 'port'"),
    ("name: p\nproject: true\njobs: [{id: a, file: /etc/passwd}]\n",
     r"line 3, job 'a': with 'project: true', 'file' must be a path inside"),
    ("name: p\njobs:\n  - just a string\n", r"line 3, job #1: each job must be a mapping"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    max_wait_seconds: .nan\n",
     r"line 5, job 'a': 'max_wait_seconds' must be a finite number, got nan"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    timeout: .inf\n",
     r"line 5, job 'a': 'timeout' must be a finite number, got inf"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    delay: -.Inf\n",
     r"line 5, job 'a': 'delay' must be a finite number, got -inf"),
    ("name: p\njobs:\n  - id: a\n    file: step.py\n    priority: 9223372036854775808\n",
     r"line 5, job 'a': 'priority' must be a signed 64-bit integer"),
    ("- a\n- b\n", r"the top level must be a mapping"),
    ("name: p\njobs: [{id: a\n", r"not valid YAML"),
])
def test_errors_name_the_file_the_job_and_the_line(pipeline_file, body, message):
    path = pipeline_file(body)
    with pytest.raises(PipelineError, match=message) as info:
        load_pipeline(path)
    assert str(info.value).startswith(path)


def test_a_service_job_with_its_port(pipeline_file):
    pipeline = load_pipeline(pipeline_file("""
        name: p
        jobs:
          - {id: api, file: step.py, type: service, port: 8080}
          - {id: call, file: step.py, depends_on: api}
        """))
    api = pipeline.jobs[0]
    assert (api.job_type, api.port) == ("SERVICE", 8080)


def test_missing_pipeline_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_pipeline(str(tmp_path / "nope.yaml"))


def test_the_originals_keys_and_spellings_are_accepted(pipeline_file):
    pipeline = load_pipeline(pipeline_file("""
        name: p
        version: "1.0"
        description: the original's files carry a version
        jobs:
          - {id: a, file: step.py, type: RUN, priority: "5", args: 42}
          - {id: b, file: step.py, type: Service, port: "8080", max_wait_seconds: "60", delay: "2"}
          - {id: c, file: step.py, type: task}
        """))
    a, b, c = pipeline.jobs
    assert (a.job_type, a.priority, a.args) == ("RUN_PAYLOAD", 5, "42")
    assert (b.job_type, b.port, b.max_wait_seconds, b.delay) == ("SERVICE", 8080, 60, 2000)
    assert c.job_type == "RUN_PAYLOAD" and pipeline.warnings == []


def test_an_unknown_key_is_ignored_with_a_warning_naming_file_line_and_key(pipeline_file):
    path = pipeline_file("""
        name: p
        owner: me
        jobs:
          - id: a
            file: step.py
            colour: blue
        """)
    with pytest.warns(PipelineWarning) as caught:
        pipeline = load_pipeline(path)
    messages = [str(w.message) for w in caught]
    assert messages == pipeline.warnings
    assert messages[0].startswith(f"{path}, line 3, the pipeline: unknown key 'owner' ignored")
    assert messages[1].startswith(f"{path}, line 7, job 'a': unknown key 'colour' ignored")
    assert [job.job_id for job in pipeline.jobs] == ["a"]


LAUGHS = """\
name: laughs
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
jobs:
  - id: one
    file: step.py
    args: *i
"""
LOADER_MEMORY_BYTES = 1024 ** 3   # far more than a pipeline needs, far less than 10^9 laughs


def test_a_billion_laughs_is_refused_before_expanding_naming_file_and_line(pipeline_file):
    """In a child whose memory is capped, so the bug (expanding 10^9 nodes) fails fast, not the machine."""
    path = pipeline_file(LAUGHS)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({0}, {0}))\n"
            "from titan_sdk import load_pipeline\n"
            "try:\n    load_pipeline(sys.argv[1])\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n").format(LOADER_MEMORY_BYTES)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("PipelineError"), (done.stdout, done.stderr[-2000:])
    assert path in done.stdout and "line 5" in done.stdout and "more than" in done.stdout, done.stdout
    assert time.monotonic() - started < 30


def test_an_alias_inside_its_own_anchor_is_refused(pipeline_file):
    path = pipeline_file("""\
        name: loop
        jobs: &jobs
          - id: one
            file: step.py
            args: *jobs
        """)
    with pytest.raises(PipelineError, match="line 5.*inside the anchor it names"):
        load_pipeline(path)


def test_small_aliases_still_work(pipeline_file):
    path = pipeline_file("""\
        name: reuse
        jobs:
          - id: one
            file: step.py
            requirement: GPU
            args: &args ["--size", "3"]
          - id: two
            file: step.py
            args: *args
        """)
    jobs = load_pipeline(path).jobs
    assert jobs[1].args == jobs[0].args == "--size 3"


def test_a_control_character_in_an_id_or_the_name_is_refused_with_file_and_line(pipeline_file):
    job = pipeline_file("""\
        name: ok
        jobs:
          - id: "evil\\e[2J"
            file: step.py
        """)
    with pytest.raises(PipelineError, match=r"line 3, job 'evil\\x1b\[2J': 'id' holds the control character U\+001B"):
        load_pipeline(job)
    name = pipeline_file("""\
        name: "nightly\\nINFO forged"
        jobs:
          - id: one
            file: step.py
        """)
    with pytest.raises(PipelineError, match=r"line 1, the pipeline: 'name' holds the control character U\+000A"):
        load_pipeline(name)

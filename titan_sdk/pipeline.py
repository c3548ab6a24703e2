"""YAML pipelines in the original Titan format, checked before anything is submitted.

    name: nightly
    jobs:
      - id: extract
        file: etl/extract.py          # relative to this YAML file's folder
        priority: 5
      - id: train
        file: ml/train.py
        depends_on: [extract]
        requirement: GPU
        retries: 2
        timeout: 600
      - id: api                       # a long-running service; its children start once the port is up
        type: service
        file: api.py
        port: 8080

With `project: true` the YAML's folder is shipped as a project archive (uploaded once per content, named
"<pipeline name>.zip"); each job's `file:` is a path inside that folder, and the job runs with the
extracted folder as its working directory, so it can import its sibling modules and read its data files.

Every problem names the file, the job and the line: misspelt keys ("did you mean ..."), wrong types,
missing fields, missing script files. Other unknown keys are ignored, as the original ignored them, with a
PipelineWarning naming the file, the line and the key. The graph itself (cycles, unknown parents) is checked by the master before it queues any
job of the pipeline.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import yaml

from titan import defaults
from titan.core.names import name_problem, shown_name
from titan.net.fields import is_of_type, number_problem
from titan_sdk.job import TitanJob

NUMBER = (int, float)
# `version` is read by nobody (the original's files carry it; it names the format, not the pipeline).
TOP_LEVEL = {"name": (str,), "project": (bool,), "jobs": (list,), "description": (str,),
             "version": (str, int, float)}
# key -> (accepted types, TitanJob argument it becomes)
JOB_KEYS: Dict[str, Tuple[tuple, str]] = {
    "id": ((str,), "job_id"), "file": ((str,), "filename"), "type": ((str,), "job_type"),
    "args": ((str, list), "args"), "depends_on": ((list, str), "parents"), "requirement": ((str,), "requirement"),
    "priority": ((int,), "priority"), "delay": (NUMBER, "delay"), "affinity": ((bool,), "affinity"),
    "port": ((int,), "port"), "hitl_message": ((str,), "hitl_message"),
    "max_wait_seconds": (NUMBER, "max_wait_seconds"), "retries": ((int,), "retries"),
    "timeout": (NUMBER, "timeout"), "isolation": ((str,), "isolation"),
}
# `type:` in any case; "task" is what the original called a run internally.
JOB_TYPES = {"run": "RUN_PAYLOAD", "task": "RUN_PAYLOAD", "service": "SERVICE"}
# Keys the original read with int(...), so "5" worked there as 5.
DIGIT_STRING_KEYS = frozenset({"priority", "delay", "port", "max_wait_seconds"})
# An unknown key this close to a known one is taken for a misspelling: an error, not a warning.
MISSPELLING_CUTOFF = 0.75


class PipelineWarning(UserWarning):
    """A key Titan does not know and ignores; the message names the file, the line and the key."""


class PipelineError(ValueError):
    """A pipeline file Titan cannot run; the message names the file, the job and the line."""


@dataclass
class Pipeline:
    name: str
    jobs: List[TitanJob]
    path: str
    project_folder: Optional[str] = None   # project: true -> the folder to ship as archive `archive_name`
    archive_name: Optional[str] = None
    warnings: List[str] = field(default_factory=list)   # keys ignored, each with its file and line


def load_pipeline(path: str) -> Pipeline:
    """Read and check a pipeline file; returns its name and TitanJobs (scripts already read)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pipeline file {path!r} not found")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        root = yaml.compose(text, Loader=_AliasLimitedLoader)
    except yaml.MarkedYAMLError as exc:
        where = f"{path}, line {exc.problem_mark.line + 1}" if exc.problem_mark else path
        context = f"{exc.context}: " if exc.context else ""
        raise PipelineError(f"{where}: not valid YAML: {context}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {exc}") from None
    where = _Where(path)
    if not isinstance(root, yaml.MappingNode):
        raise PipelineError(f"{path}: the top level must be a mapping with 'name' and 'jobs'")
    top = where.mapping(root, "the pipeline", TOP_LEVEL, required=("name", "jobs"))
    if name_problem(top["name"][0]):
        raise where.error(top["name"][1], "the pipeline", f"'name' {name_problem(top['name'][0])}")
    if not top["jobs"][0]:
        raise where.error(top["jobs"][1], "the pipeline", "'jobs' is empty")
    folder = os.path.dirname(os.path.abspath(path))
    archive = _archive_name(top["name"][0]) if top.get("project", (False,))[0] else None
    jobs = [_job(where, node, index, folder, archive) for index, node in enumerate(top["jobs"][1].value)]
    for message in where.warnings:
        warnings.warn(message, PipelineWarning, stacklevel=2)
    return Pipeline(name=top["name"][0], jobs=jobs, path=path, project_folder=folder if archive else None,
                    archive_name=archive, warnings=where.warnings)


class _AliasLimitedLoader(yaml.SafeLoader):
    """Composes as SafeLoader does (an alias is one shared node, cheap) while counting how many nodes
    the aliases stand for once expanded; past MAX_YAML_ALIAS_NODES, or an alias inside its own anchor,
    it stops with the line of that alias before anything is expanded."""

    def __init__(self, stream):
        super().__init__(stream)
        self._sizes: Dict[int, int] = {}   # id(node) -> nodes in it once expanded (each node's own size)
        self._alias_nodes = 0

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
            return node
        mark = self.peek_event().start_mark
        node = super().compose_node(parent, index)
        if id(node) not in self._sizes:
            raise yaml.composer.ComposerError(None, None, "this alias is inside the anchor it names "
                                              "(a recursive structure, which a pipeline never needs)", mark)
        self._alias_nodes += self._sizes[id(node)]
        if self._alias_nodes > defaults.MAX_YAML_ALIAS_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"the aliases up to here stand for more than {defaults.MAX_YAML_ALIAS_NODES} "
                "YAML nodes once expanded (a 'billion laughs' file?); write the repeated parts out", mark)
        return node


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _archive_name(pipeline_name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in pipeline_name) + ".zip"


def _job(where: "_Where", node: yaml.Node, index: int, folder: str, archive: Optional[str]) -> TitanJob:
    label = f"job #{index + 1}"
    if not isinstance(node, yaml.MappingNode):
        raise where.error(node, label, "each job must be a mapping with at least 'id' and 'file'")
    ids = [value.value for key, value in node.value if key.value == "id" and isinstance(value, yaml.ScalarNode)]
    label = f"job {ids[0]!r}" if ids else label
    fields = where.mapping(node, label, {key: types for key, (types, _) in JOB_KEYS.items()},
                           required=("id", "file"))
    label = f"job {shown_name(fields['id'][0])}"
    if name_problem(fields["id"][0]):
        raise where.error(fields["id"][1], label, f"'id' {name_problem(fields['id'][0])}")
    if str(fields.get("type", ("",))[0]).lower() == "service" and not fields.get("port", (0,))[0]:
        raise where.error(fields["type"][1], label, "'type: service' needs the 'port' it listens on")
    arguments: Dict[str, Any] = {}
    for key, (value, value_node) in fields.items():
        arguments[JOB_KEYS[key][1]] = _convert(where, key, value, value_node, label)
    script = arguments["filename"]
    arguments["filename"] = script if os.path.isabs(script) else os.path.join(folder, script)
    if not os.path.isfile(arguments["filename"]):
        raise where.error(fields["file"][1], label, f"script {script!r} not found (looked in {folder})")
    if archive is not None:
        inside = os.path.relpath(os.path.realpath(arguments["filename"]), os.path.realpath(folder))
        if os.path.isabs(script) or inside.split(os.sep)[0] == "..":
            raise where.error(fields["file"][1], label, f"with 'project: true', 'file' must be a path inside "
                                                        f"the pipeline's folder {folder}, got {script!r}")
        arguments.update(filename=f"{archive}/{inside.replace(os.sep, '/')}", is_archive=True)
    return TitanJob(**arguments)


def _convert(where: "_Where", key: str, value, node: yaml.Node, label: str):
    if key == "type":
        if value.lower() not in JOB_TYPES:
            raise where.error(node, label, f"'type' must be one of {', '.join(JOB_TYPES)} (any case), got {value!r}")
        return JOB_TYPES[value.lower()]
    if key == "depends_on":
        parents = [value] if isinstance(value, str) else value
        if not all(isinstance(parent, str) for parent in parents):
            raise where.error(node, label, "'depends_on' must list job ids")
        return parents
    problem = number_problem(value)   # YAML's .nan and .inf are floats too
    if problem:
        raise where.error(node, label, f"{key!r} {problem}")
    if key == "args" and isinstance(value, list):
        return [str(item) for item in value]
    if key == "delay":
        return value * 1000   # seconds in YAML (as in the original's YAML); TitanJob takes milliseconds
    return value


class _Where:
    """Turns YAML nodes into values while remembering where each came from, for error messages."""

    def __init__(self, path: str):
        self.path = path
        self.warnings: List[str] = []

    def error(self, node: yaml.Node, label: str, problem: str) -> PipelineError:
        return PipelineError(f"{self.path}, line {node.start_mark.line + 1}, {label}: {problem}")

    def mapping(self, node: yaml.MappingNode, label: str, allowed: Dict[str, tuple],
                required: Tuple[str, ...]) -> Dict[str, Tuple[Any, yaml.Node]]:
        fields: Dict[str, Tuple[Any, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key not in allowed:
                self._unknown_key(key_node, label, allowed)
                continue
            value = _as_the_original_read_it(key, self._value(value_node))
            if value is not None and not is_of_type(value, allowed[key]):
                expected = " or ".join(t.__name__ for t in allowed[key])
                raise self.error(value_node, label, f"{key!r} must be {expected}, got {type(value).__name__} "
                                                    f"{value!r}")
            if value is not None:
                fields[key] = (value, value_node)
        missing = [key for key in required if key not in fields]
        if missing:
            raise self.error(node, label, f"missing {', '.join(map(repr, missing))}")
        return fields

    def _unknown_key(self, key_node: yaml.Node, label: str, allowed: Dict[str, tuple]) -> None:
        """A misspelt known key is an error (an ignored `depends_on` would run jobs out of order); any
        other unknown key is ignored, as the original did, with a warning naming it."""
        key = str(key_node.value)
        close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=MISSPELLING_CUTOFF)
        if close:
            raise self.error(key_node, label, f"unknown key {key!r}; did you mean {close[0]!r}?")
        self.warnings.append(f"{self.path}, line {key_node.start_mark.line + 1}, {label}: unknown key {key!r} "
                             f"ignored (known keys: {', '.join(sorted(allowed))})")

    def _value(self, node: yaml.Node) -> Optional[Any]:
        return yaml.SafeLoader("").construct_document(node)


def _as_the_original_read_it(key: str, value):
    """The original converted some values itself: int("5") for numbers, str(...) for args."""
    if key in DIGIT_STRING_KEYS and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if key == "args" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value

"""What user scripts import: `from titan_sdk import TitanClient, TitanJob`."""

from titan.core.errors import (AccessDenied, GateError, InvalidDag, JobConflict, JournalUnavailable, LimitExceeded,
                               MasterUnreachable, RequestRejected, ServiceError, StoreTypeError, TitanError, UnknownAgentRun,
                               UnknownArtifact, UnknownDag, UnknownJob, UnknownScript)
from titan_sdk.client import TitanClient
from titan_sdk.job import TitanJob
from titan_sdk.pipeline import PipelineError, load_pipeline

__all__ = ["TitanClient", "TitanJob", "TitanError", "InvalidDag", "JobConflict", "UnknownJob", "UnknownDag",
           "StoreTypeError", "RequestRejected", "MasterUnreachable", "PipelineError", "load_pipeline", "GateError",
           "UnknownArtifact", "UnknownAgentRun", "ServiceError", "LimitExceeded", "AccessDenied",
           "JournalUnavailable", "UnknownScript"]

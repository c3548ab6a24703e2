"""Typed errors the scheduler raises; the master turns each into an error reply that names the problem."""

from __future__ import annotations


class TitanError(Exception):
    """Base of every error Titan reports back to a caller."""

    kind = "TitanError"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidDag(TitanError, ValueError):
    kind = "InvalidDag"


class JobConflict(TitanError):
    kind = "JobConflict"


class UnknownJob(TitanError, LookupError):
    kind = "UnknownJob"


class UnknownDag(TitanError, LookupError):
    kind = "UnknownDag"


class StoreTypeError(TitanError):
    kind = "StoreTypeError"


class GateError(TitanError, ValueError):
    """approve/reject of something that is not a gate waiting for a decision."""

    kind = "GateError"


class ServiceError(TitanError, ValueError):
    """stop_service of a job that is not a service."""

    kind = "ServiceError"


class RequestRejected(TitanError):
    """The master refused a request for a reason without a more specific type (e.g. a malformed message)."""

    kind = "RequestRejected"


class UnknownArtifact(TitanError, LookupError):
    """No artifact or project archive of that name (or content hash) on the master."""

    kind = "UnknownArtifact"


class UnknownAgentRun(TitanError, LookupError):
    kind = "UnknownAgentRun"


class MasterUnreachable(TitanError, TimeoutError):
    """No answer from the master within the client's timeout."""

    kind = "MasterUnreachable"


class UnknownScript(TitanError, FileNotFoundError):
    """A job's script was not found where the job was built, and no script of that name is deployed on
    the master (client.deploy_script). A FileNotFoundError, as the original raised for a missing script."""

    kind = "UnknownScript"


ERRORS_BY_KIND = {cls.kind: cls for cls in (InvalidDag, JobConflict, UnknownJob, UnknownDag,
                                             StoreTypeError, GateError, ServiceError, RequestRejected,
                                             UnknownArtifact, UnknownAgentRun, UnknownScript)}


def error_from_reply(error: dict) -> TitanError:
    """Rebuild, on the client side, the typed error the master reported."""
    cls = ERRORS_BY_KIND.get(error.get("kind"), RequestRejected)
    return cls(error.get("message", "request refused"), **(error.get("details") or {}))


class LimitExceeded(TitanError):
    """A request over one of the master's configured limits; the message names the limit and its flag."""

    kind = "LimitExceeded"


class AccessDenied(TitanError, PermissionError):
    """A key that may not do what it asked (e.g. a worker key outside any job it runs, a revoked key)."""

    kind = "AccessDenied"


class JournalUnavailable(TitanError):
    """The master cannot write its journal (a full disk, an I/O error): it refuses changes until it can,
    and nothing of the refused request was done. Reads still work."""

    kind = "JournalUnavailable"


ERRORS_BY_KIND.update({cls.kind: cls for cls in (LimitExceeded, AccessDenied, JournalUnavailable)})

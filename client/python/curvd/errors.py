"""The exceptions and the warning category of the curvd package."""

import grpc


class CurvdError(Exception):
    """An error the server answered, or a request curvd cannot make.

    `code` is the grpc.StatusCode the server answered with, or None when the
    error arose in the client.
    """

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class ModelExportError(CurvdError):
    """An nn.Module that neither torch.jit.script nor torch.jit.trace can export.

    The message names both failures and what to do instead.
    """


class CurvdWarning(UserWarning):
    """What the background uploader reports instead of raising: a server that went
    away, a dropped checkpoint, a measurement that FAILED."""


# Transport failures: the server is away or slow, and the same call may succeed
# later (the C++ client retries the same codes).
TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE,
                             grpc.StatusCode.DEADLINE_EXCEEDED,
                             grpc.StatusCode.ABORTED})


def is_transient(error):
    """True when `error` is a grpc.RpcError worth the same call again later."""
    return isinstance(error, grpc.RpcError) and error.code() in TRANSIENT_CODES


def from_rpc_error(error, doing, hint=""):
    """A CurvdError for grpc.RpcError `error`: "`doing`: CODE: the server's
    message`hint`", `doing` saying what the client was doing (e.g. "CreateRun
    x") and `hint`, when given, what to do about it."""
    return CurvdError(f"{doing}: {error.code().name}: {error.details()}{hint}", error.code())

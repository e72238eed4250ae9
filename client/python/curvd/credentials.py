"""The credentials of a connection to curvd, as the C++ client takes them
(client/connection_credentials.h): arguments, else the environment.

  CURVD_TOKEN       the bearer token itself
  CURVD_TOKEN_FILE  a file holding it (CURVD_TOKEN wins)
  CURVD_TLS_CA      PEM file of the CAs that sign the server's certificate
  CURVD_TLS_CERT    PEM client certificate chain, for mutual TLS
  CURVD_TLS_KEY     its private key
  CURVD_TLS=1       TLS with the system's roots when no CA is given
  CURVD_TLS_SERVER_NAME  the name to check the certificate against instead of
                    the target's host

A token is sent as "authorization: Bearer TOKEN" and implies TLS: it is never
sent in clear.
"""

import os

import grpc

from curvd.errors import CurvdError


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise CurvdError(f"cannot read {path}: {error.strerror}") from error


def _token(token):
    if token is not None:
        return token or None
    if os.environ.get("CURVD_TOKEN"):
        return os.environ["CURVD_TOKEN"].strip()
    path = os.environ.get("CURVD_TOKEN_FILE")
    if not path:
        return None
    value = _read(path).decode().strip()
    if not value:
        raise CurvdError(f"the token file {path} is empty")
    return value


def _pem(value, variable):
    """`value` (PEM bytes or str) when given, else the file $`variable` names."""
    if value is not None:
        return value.encode() if isinstance(value, str) else value
    path = os.environ.get(variable)
    return _read(path) if path else None


def resolve(token=None, root_certificates=None, private_key=None, certificate_chain=None,
            tls=None, tls_server_name=None):
    """The credentials as a dict of Client's keyword arguments, each argument
    left None taken from the environment (module docstring): token (str or
    None), root_certificates, private_key and certificate_chain (PEM bytes or
    None), tls (bool) and tls_server_name (str or None). Raises CurvdError for
    an unreadable file, an empty token file, or a certificate without its key
    (or the reverse)."""
    resolved = dict(token=_token(token),
                    root_certificates=_pem(root_certificates, "CURVD_TLS_CA"),
                    private_key=_pem(private_key, "CURVD_TLS_KEY"),
                    certificate_chain=_pem(certificate_chain, "CURVD_TLS_CERT"),
                    tls=bool(tls) if tls is not None else os.environ.get("CURVD_TLS") == "1",
                    tls_server_name=tls_server_name or os.environ.get("CURVD_TLS_SERVER_NAME"))
    if (resolved["private_key"] is None) != (resolved["certificate_chain"] is None):
        raise CurvdError("a TLS client certificate and its key go together: give both "
                         "(certificate_chain and private_key, or $CURVD_TLS_CERT and "
                         "$CURVD_TLS_KEY) or neither")
    return resolved


def channel(target, options, *, token, root_certificates, private_key, certificate_chain, tls,
            tls_server_name):
    """A channel to `target` with gRPC `options` and what resolve() returned:
    TLS when `tls` or any PEM or a token is given, with the token as call
    credentials; plain text otherwise."""
    if not (tls or token or root_certificates or certificate_chain):
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                               private_key=private_key,
                                               certificate_chain=certificate_chain)
    if token:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token))
    if tls_server_name:
        options = [*options, ("grpc.ssl_target_name_override", tls_server_name)]
    return grpc.secure_channel(target, credentials, options=options)

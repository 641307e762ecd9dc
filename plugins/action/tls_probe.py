# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.tls_probe``: a TLS handshake run entirely on the controller."""

from __future__ import annotations

import datetime
import ssl
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CRYPTOGRAPHY_REQUIREMENT,
    normalize_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._tls import (
    HAS_CRYPTOGRAPHY,
    STARTTLS_PROTOCOLS,
    ProbeRequest,
    TlsProbeError,
    describe,
    handshake,
    is_ip_address,
    load_trust_anchors,
)

if TYPE_CHECKING:
    from cryptography import x509

#: The one argument spec; plugins/modules/tls_probe.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "host": {"type": "str", "required": True},
        "port": {"type": "int", "default": 443},
        "starttls": {"type": "str", "choices": list(STARTTLS_PROTOCOLS), "default": "none"},
        "server_name": {"type": "str"},
        "expected_names": {"type": "list", "elements": "str"},
        "expected_thumbprint": {"type": "str"},
        "timeout": {"type": "float", "default": 10.0},
        "validate_chain": {"type": "bool", "default": False},
        "ca_path": {"type": "path"},
        "smtp_helo": {"type": "str"},
    },
)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        require_cryptography()
        check_arguments(args)
        request = probe_request(args)
        expected_thumbprint = _expected_thumbprint(args["expected_thumbprint"])
        trust_anchors = _trust_anchors(args["ca_path"]) if args["validate_chain"] else None
        try:
            served = handshake(request)
        except TlsProbeError as exc:
            raise AnsibleActionFail(str(exc), result={"changed": False, "stage": exc.stage}) from None
        return describe(
            served,
            expected_names=_expected_names(args, request),
            expected_thumbprint=expected_thumbprint,
            trust_anchors=trust_anchors,
            now=datetime.datetime.now(datetime.timezone.utc),
        )


def require_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleActionFail(
            f"exchange.pki.tls_probe needs the Python library {CRYPTOGRAPHY_REQUIREMENT} on the controller "
            f"(the Python running Ansible: {sys.executable})"
        )


def check_arguments(args: Mapping[str, Any]) -> None:
    """What the argument spec cannot say: ranges and options that only make sense together."""
    if not 1 <= args["port"] <= 65535:
        raise AnsibleActionFail(f"port must be between 1 and 65535, got {args['port']}")
    if not args["timeout"] > 0:
        raise AnsibleActionFail(f"timeout must be a positive number of seconds, got {args['timeout']}")
    for option in ("host", "server_name", "smtp_helo"):
        if args[option] is not None and not args[option].strip():
            raise AnsibleActionFail(f"{option} must not be empty")
    if args["server_name"] is not None and not is_ip_address(args["server_name"]):
        try:
            args["server_name"].encode("idna")
        except UnicodeError as exc:
            raise AnsibleActionFail(f"server_name {args['server_name']!r} is not a valid DNS name: {exc}") from None
    if args["ca_path"] is not None and not args["validate_chain"]:
        raise AnsibleActionFail("ca_path is only used to verify the chain: set validate_chain=true with it")


def probe_request(args: Mapping[str, Any]) -> ProbeRequest:
    """The connection to make, from validated arguments."""
    host = args["host"]
    server_name = args["server_name"]
    if server_name is None and not is_ip_address(host):
        server_name = host
    return ProbeRequest(
        host=host,
        port=args["port"],
        starttls=args["starttls"],
        server_name=server_name,
        timeout=args["timeout"],
        smtp_helo=args["smtp_helo"],
    )


def _expected_names(args: Mapping[str, Any], request: ProbeRequest) -> list[str]:
    if args["expected_names"] is not None:
        return list(args["expected_names"])
    return [request.server_name or request.host]


def _expected_thumbprint(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return normalize_thumbprint(text)
    except ValueError as exc:
        raise AnsibleActionFail(f"expected_thumbprint: {exc}") from None


def _trust_anchors(ca_path: str | None) -> list[x509.Certificate]:
    """The trusted roots for validate_chain: ``ca_path``, else the controller's system bundle."""
    path = ca_path or ssl.get_default_verify_paths().cafile
    if path is None:
        raise AnsibleActionFail("validate_chain needs ca_path: the controller has no system CA bundle")
    try:
        with open(path, "rb") as bundle:
            anchors = load_trust_anchors(bundle.read())
    except OSError as exc:
        raise AnsibleActionFail(f"ca_path {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise AnsibleActionFail(f"ca_path {path}: not a PEM bundle of certificates ({exc})") from None
    return anchors

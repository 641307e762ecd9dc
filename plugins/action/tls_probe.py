# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.tls_probe``: a TLS handshake run entirely on the controller."""

from __future__ import annotations

import datetime
import os
import ssl
import stat
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
    ProbeOptionError,
    ProbeRequest,
    TlsProbeError,
    check_host_name,
    check_port,
    check_smtp_helo,
    check_text,
    check_timeout,
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
#: The largest expected_thumbprint accepted before normalization (40 digits with separators and marks fit).
MAX_THUMBPRINT_TEXT = 256
#: The largest CA bundle read for validate_chain (the Mozilla bundle is about 0.2 MiB).
MAX_CA_BUNDLE = 16 * 1024 * 1024


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        require_cryptography()
        check_arguments(args, raw=self._task.args)
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


def check_arguments(args: dict[str, Any], raw: Mapping[str, Any] | None = None) -> None:
    """What the argument spec cannot say: ranges, syntax, and options that only make sense together.

    Nothing is sent before every value has passed; a bad one is an AnsibleActionFail naming the option.
    ``raw`` (the task's arguments before conversion) tells a boolean from a number. Names are stored back in
    the form the probe uses (U-labels as A-labels).
    """
    given = raw or {}
    try:
        for option in ("port", "timeout"):
            if isinstance(given.get(option), bool):
                raise ProbeOptionError(option, f"must be a number, got the boolean {given[option]!r}")
        check_port("port", args["port"])
        args["timeout"] = check_timeout("timeout", args["timeout"])
        args["host"] = check_host_name("host", args["host"])
        if args["server_name"] is not None:
            args["server_name"] = check_host_name("server_name", args["server_name"])
        if args["smtp_helo"] is not None:
            args["smtp_helo"] = check_smtp_helo("smtp_helo", args["smtp_helo"])
        for position, name in enumerate(args["expected_names"] or ()):
            check_host_name(f"expected_names[{position}]", name, wildcard=True)
        if args["expected_thumbprint"] is not None:
            check_text("expected_thumbprint", args["expected_thumbprint"], max_length=MAX_THUMBPRINT_TEXT,
                       spaces=True)
        if args["ca_path"] is not None:
            check_text("ca_path", args["ca_path"], max_length=4096, spaces=True)
    except ProbeOptionError as exc:
        raise AnsibleActionFail(str(exc)) from None
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
    path = ca_path if ca_path is not None else ssl.get_default_verify_paths().cafile
    if path is None:
        raise AnsibleActionFail("validate_chain needs ca_path: the controller has no system CA bundle")
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # not a directory, FIFO or device such as /dev/zero
            raise AnsibleActionFail(f"ca_path {path}: not a regular file")
        with open(path, "rb") as bundle:
            pem = bundle.read(MAX_CA_BUNDLE + 1)
    except OSError as exc:
        raise AnsibleActionFail(f"ca_path {path}: cannot read it ({exc.strerror or exc})") from None
    if len(pem) > MAX_CA_BUNDLE:
        raise AnsibleActionFail(f"ca_path {path}: larger than {MAX_CA_BUNDLE // (1024 * 1024)} MiB, not a CA bundle")
    try:
        return load_trust_anchors(pem)
    except ValueError as exc:
        raise AnsibleActionFail(f"ca_path {path}: not a PEM bundle of certificates ({exc})") from None

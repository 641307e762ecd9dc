# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse WS-Management SOAP requests and build the answers pywinrm expects (see TRANSPORT.md)."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
WSMAN_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"

ACTION_CREATE = f"{TRANSFER}/Create"
ACTION_DELETE = f"{TRANSFER}/Delete"
ACTION_COMMAND = f"{SHELL}/Command"
ACTION_SEND = f"{SHELL}/Send"
ACTION_RECEIVE = f"{SHELL}/Receive"
ACTION_SIGNAL = f"{SHELL}/Signal"

#: WSMan fault raised by a Receive that found no output within the operation timeout; clients poll again.
OPERATION_TIMEOUT_CODE = 2150858793
#: ERROR_WSMAN_INVALID_SELECTORS-like fault for an unknown shell or command id.
INVALID_SELECTORS_CODE = 2150858843

_DURATION = re.compile(r"^PT(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?$")


class SoapError(ValueError):
    """The request body is not a WS-Management envelope this lab understands."""


@dataclass(frozen=True)
class Request:
    """The parts of a WS-Management request that the lab acts on."""

    action: str
    message_id: str
    body: ET.Element
    shell_id: str | None = None
    operation_timeout: float | None = None
    options: dict[str, str] = field(default_factory=dict)

    def find(self, path: str) -> ET.Element | None:
        """Find an element below the SOAP body (``rsp:`` prefix = the shell namespace)."""
        return self.body.find(path, {"rsp": SHELL})


def parse_request(payload: bytes) -> Request:
    """Parse one SOAP envelope; raise SoapError when a required header is missing."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError as exc:
        raise SoapError(f"malformed SOAP envelope: {exc}") from exc
    header = root.find(f"{{{SOAP}}}Header")
    body = root.find(f"{{{SOAP}}}Body")
    if header is None or body is None:
        raise SoapError("SOAP envelope without Header or Body")
    action = header.findtext(f"{{{ADDRESSING}}}Action")
    message_id = header.findtext(f"{{{ADDRESSING}}}MessageID")
    if not action or not message_id:
        raise SoapError("SOAP header without Action or MessageID")
    shell_id = None
    for selector in header.iterfind(f"{{{WSMAN}}}SelectorSet/{{{WSMAN}}}Selector"):
        if selector.get("Name") == "ShellId":
            shell_id = selector.text
    options = {
        option.get("Name", ""): option.text or ""
        for option in header.iterfind(f"{{{WSMAN}}}OptionSet/{{{WSMAN}}}Option")
    }
    return Request(
        action=action.strip(),
        message_id=message_id.strip(),
        body=body,
        shell_id=shell_id,
        operation_timeout=_parse_duration(header.findtext(f"{{{WSMAN}}}OperationTimeout")),
        options=options,
    )


def _parse_duration(text: str | None) -> float | None:
    """Parse the xs:duration forms pywinrm sends (``PT20S``, ``PT20.000S``)."""
    match = _DURATION.match(text.strip()) if text else None
    if not match:
        return None
    return float(match["m"] or 0) * 60 + float(match["s"] or 0)


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:w="{WSMAN}" xmlns:rsp="{SHELL}">'
        f"<s:Header><a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        f"<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def create_response(request: Request, shell_id: str) -> bytes:
    """Answer transfer/Create with the new shell's id (pywinrm looks for Name="ShellId")."""
    body = (
        f'<x:ResourceCreated xmlns:x="{TRANSFER}"><a:Address>{escape(request.message_id)}</a:Address>'
        f"<a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
        f'</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
        f"</a:ReferenceParameters></x:ResourceCreated>"
        f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId></rsp:Shell>"
    )
    return _envelope(f"{request.action}Response", request.message_id, body)


def command_response(request: Request, command_id: str) -> bytes:
    """Answer shell/Command with the command id."""
    body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
    return _envelope(f"{request.action}Response", request.message_id, body)


def receive_response(request: Request, command_id: str, stdout: str, stderr: str, exit_code: int) -> bytes:
    """Answer shell/Receive with the whole output (base64 streams) and CommandState Done."""
    streams = "".join(
        f'<rsp:Stream Name="{name}" CommandId="{command_id}">{data}</rsp:Stream>'
        for name, data in (("stdout", stdout), ("stderr", stderr))
        if data
    )
    ends = "".join(
        f'<rsp:Stream Name="{name}" CommandId="{command_id}" End="true"></rsp:Stream>' for name in ("stdout", "stderr")
    )
    body = (
        f"<rsp:ReceiveResponse>{streams}{ends}"
        f'<rsp:CommandState CommandId="{command_id}" State="{SHELL}/CommandState/Done">'
        f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"
    )
    return _envelope(f"{request.action}Response", request.message_id, body)


def empty_response(request: Request) -> bytes:
    """Answer Send, Signal and Delete: an empty body that relates to the request (pywinrm checks RelatesTo)."""
    tags = {ACTION_SEND: "<rsp:SendResponse/>", ACTION_SIGNAL: "<rsp:SignalResponse/>"}
    return _envelope(f"{request.action}Response", request.message_id, tags.get(request.action, ""))


def fault(relates_to: str, code: int, reason: str, *, subcode: str = "w:InternalError") -> bytes:
    """A SOAP fault carrying a WSManFault code (sent with HTTP 500, like WinRM)."""
    body = (
        f"<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="{WSMAN_FAULT}" Code="{code}" Machine="lab">'
        f"<f:Message>{escape(reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def operation_timeout_fault(request: Request) -> bytes:
    """The fault WinRM returns when a Receive found nothing within the OperationTimeout."""
    return fault(
        request.message_id,
        OPERATION_TIMEOUT_CODE,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
        subcode="w:TimedOut",
    )

# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An AD CS-like enterprise CA as certreq sees it: templates, pending approval, denial, retrieval.

Fidelity: exchange-facts.md "AD CS enrolment" (certreq -submit -config "CAHost\\CAName" -attrib
"CertificateTemplate:<T>"; pending -> RequestId; certreq -retrieve <id>). Dispositions use the text
and HRESULTs certreq prints. Not thread-safe on its own: the lab's Fleet serialises access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from cryptography import x509

from ._authority import Authority
from ._errors import PkiError
from ._requests import csr_signature_valid, parse_csr
from ._x509 import thumbprint

Approval = Literal["auto", "manual", "deny"]
EnrolmentStatus = Literal["Issued", "Pending", "Denied", "Failed"]

DEFAULT_CONFIG = "ca01.contoso.lab\\Contoso Lab Issuing CA"
ISSUED = "Issued"
TAKEN_UNDER_SUBMISSION = "Taken Under Submission"
DENIED_BY_POLICY = "Denied by Policy Module"
RPC_UNAVAILABLE = "The RPC server is unavailable. 0x800706ba (WIN32: 1722 RPC_S_SERVER_UNAVAILABLE)"
UNSUPPORTED_TEMPLATE = (
    "The requested certificate template is not supported by this CA. "
    "0x80094800 (-2146875392 CERTSRV_E_UNSUPPORTED_CERT_TYPE)"
)
NO_TEMPLATE = (
    "The request contains no certificate template information. 0x80094801 (-2146875391 CERTSRV_E_NO_CERT_TYPE)"
)
BAD_SIGNATURE = "The request signature is invalid. 0x80090006 (-2146893818 NTE_BAD_SIGNATURE)"
MALFORMED_SUFFIX = "0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)"
BAD_DATA_SUFFIX = "0x80090005 (-2146893819 NTE_BAD_DATA)"
NOT_FOUND = "Cannot find object or property. 0x80092004 (-2146885628 CRYPT_E_NOT_FOUND)"
CA_EXPIRED = "The CA certificate has expired. 0x800b0101 (-2146762495 CERT_E_EXPIRED)"
_TEMPLATE_ATTRIBUTE = "certificatetemplate"


@dataclass(frozen=True)
class TemplateSpec:
    """A certificate template as the CA publishes it (defaults follow AD CS's WebServer template)."""

    name: str
    approval: Approval = "auto"
    validity: timedelta = timedelta(days=730)
    ekus: tuple[str, ...] = ("server_auth",)


@dataclass(frozen=True)
class EnrolmentResult:
    """What certreq reports: status, request id (None when the CA never saw the request), certificate."""

    status: EnrolmentStatus
    request_id: int | None
    certificate: x509.Certificate | None
    disposition: str


@dataclass
class _Request:
    request_id: int
    submitted: datetime
    csr: x509.CertificateSigningRequest
    template: TemplateSpec | None
    template_name: str | None
    status: EnrolmentStatus = "Pending"
    disposition: str = TAKEN_UNDER_SUBMISSION
    certificate: x509.Certificate | None = field(default=None, repr=False)

    def result(self) -> EnrolmentResult:
        return EnrolmentResult(self.status, self.request_id, self.certificate, self.disposition)

    def close(self, status: EnrolmentStatus, disposition: str) -> EnrolmentResult:
        self.status, self.disposition = status, disposition
        return self.result()


class Enrolment:
    """The CA behind ``config`` ("CAHost\\CAName"), issuing with ``authority`` from ``templates``."""

    def __init__(
        self,
        authority: Authority,
        *,
        config: str = DEFAULT_CONFIG,
        templates: Mapping[str, TemplateSpec],
        first_request_id: int = 1001,
    ) -> None:
        self.authority = authority
        self.config = config
        self._templates = {name.casefold(): spec for name, spec in templates.items()}
        self._next_id = first_request_id
        self._requests: dict[int, _Request] = {}

    def submit(
        self,
        csr_der: bytes,
        *,
        config: str,
        template: str | None = None,
        attributes: Sequence[str] = (),
        now: datetime,
    ) -> EnrolmentResult:
        """certreq -submit: Issued, Pending ("Taken Under Submission"), Denied or Failed.

        The template comes from ``template`` or a "CertificateTemplate:<name>" attribute. A wrong
        config or an unreadable request never reaches the CA (no request id).
        """
        if not self._is_this_ca(config):
            return EnrolmentResult("Failed", None, None, RPC_UNAVAILABLE)
        try:
            csr = parse_csr(csr_der)
        except PkiError as error:
            return EnrolmentResult("Failed", None, None, f"{error} {MALFORMED_SUFFIX}")
        template_name = template or _template_attribute(attributes)
        spec = self._templates.get(template_name.casefold()) if template_name else None
        request = self._record(csr, spec, template_name, now)
        if not csr_signature_valid(csr):
            return request.close("Failed", BAD_SIGNATURE)
        if template_name is None:
            return request.close("Denied", NO_TEMPLATE)
        if spec is None:
            return request.close("Denied", UNSUPPORTED_TEMPLATE)
        if spec.approval == "deny":
            return request.close("Denied", DENIED_BY_POLICY)
        if spec.approval == "manual":
            return request.result()
        return self._issue(request, now)

    def retrieve(self, request_id: int, *, config: str, now: datetime | None = None) -> EnrolmentResult:
        """certreq -retrieve: the request's current state (issuance happens at submit or approval).

        ``now`` is accepted so callers can pass the lab clock uniformly; retrieval does not depend on it.
        """
        if not self._is_this_ca(config):
            return EnrolmentResult("Failed", None, None, RPC_UNAVAILABLE)
        request = self._requests.get(request_id)
        if request is None:
            return EnrolmentResult("Failed", request_id, None, NOT_FOUND)
        return request.result()

    def approve(self, request_id: int, *, now: datetime) -> EnrolmentResult:
        """An administrator issues a pending request (certutil -resubmit)."""
        return self._issue(self._pending(request_id), now)

    def deny(self, request_id: int) -> EnrolmentResult:
        """An administrator denies a pending request (certutil -deny)."""
        return self._pending(request_id).close("Denied", DENIED_BY_POLICY)

    def state(self) -> dict[str, Any]:
        """A JSON-able view for the lab dump (no keys, no request bodies)."""
        return {
            "config": self.config,
            "templates": [
                {
                    "name": spec.name,
                    "approval": spec.approval,
                    "validity_days": spec.validity.days,
                    "ekus": list(spec.ekus),
                }
                for spec in self._templates.values()
            ],
            "requests": [_describe(request) for request in self._requests.values()],
        }

    def _is_this_ca(self, config: str) -> bool:
        return config.casefold() == self.config.casefold()

    def _record(
        self, csr: x509.CertificateSigningRequest, spec: TemplateSpec | None, template_name: str | None, now: datetime
    ) -> _Request:
        request = _Request(self._next_id, now, csr, spec, spec.name if spec else template_name)
        self._requests[request.request_id] = request
        self._next_id += 1
        return request

    def _pending(self, request_id: int) -> _Request:
        request = self._requests.get(request_id)
        if request is None:
            raise PkiError(f"no certificate request with id {request_id}")
        if request.status != "Pending":
            raise PkiError(f"certificate request {request_id} is not pending (it is {request.status})")
        return request

    def _issue(self, request: _Request, now: datetime) -> EnrolmentResult:
        assert request.template is not None  # only requests for a known template are issued
        if now >= self.authority.certificate.not_valid_after_utc:
            return request.close("Failed", CA_EXPIRED)
        try:
            request.certificate = self.authority.issue_from_csr(
                request.csr, now=now, validity=request.template.validity, ekus=request.template.ekus
            )
        except PkiError as error:
            return request.close("Failed", f"{error}. {BAD_DATA_SUFFIX}")
        return request.close("Issued", ISSUED)


def _template_attribute(attributes: Sequence[str]) -> str | None:
    """The template named by a "CertificateTemplate:<name>" attribute (lines may hold several)."""
    for line in (line for attribute in attributes for line in attribute.splitlines()):
        name, _sep, value = line.partition(":")
        if name.strip().casefold() == _TEMPLATE_ATTRIBUTE and value.strip():
            return value.strip()
    return None


def _describe(request: _Request) -> dict[str, Any]:
    return {
        "id": request.request_id,
        "status": request.status,
        "disposition": request.disposition,
        "template": request.template_name,
        "subject": request.csr.subject.rfc4514_string(),
        "submitted": request.submitted.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "thumbprint": thumbprint(request.certificate) if request.certificate else None,
    }

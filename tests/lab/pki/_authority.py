# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's certificate authorities: a two-level enterprise-like PKI plus any extra CAs a scenario needs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ._errors import PkiError, UnknownAuthority
from ._keys import PrivateKey, PublicKey, generate_key
from ._requests import csr_signature_valid
from ._x509 import SignatureHash, parse_name, sign_certificate

LAB_ROOT = "lab-root"
LAB_CA = "lab-ca"
# AD CS backdates NotBefore by its ClockSkewMinutes setting (10 minutes by default).
_CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and key, and the certificates above it (empty for a root)."""

    name: str
    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def path(self) -> tuple[x509.Certificate, ...]:
        """The chain a certificate issued by this CA carries: this CA up to the root."""
        return (self.certificate, *self.chain)

    def issue(
        self,
        *,
        public_key: PublicKey,
        subject: x509.Name,
        dns_names: Sequence[str] = (),
        ekus: Sequence[str] = ("server_auth",),
        not_before: datetime,
        not_after: datetime,
        signature_hash: SignatureHash = "sha256",
        is_ca: bool = False,
        serial_number: int | None = None,
    ) -> x509.Certificate:
        """Sign a certificate for ``public_key`` exactly as asked (no capping to the CA's validity)."""
        return sign_certificate(
            subject=subject,
            public_key=public_key,
            issuer=self.certificate.subject,
            issuer_key=self.private_key,
            not_before=not_before,
            not_after=not_after,
            dns_names=dns_names,
            ekus=ekus,
            is_ca=is_ca,
            serial_number=serial_number,
            signature_hash=signature_hash,
        )

    def issue_from_csr(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        now: datetime,
        validity: timedelta,
        ekus: Sequence[str],
        signature_hash: SignatureHash = "sha256",
    ) -> x509.Certificate:
        """Issue from a PKCS#10 request like AD CS: subject and DNS SANs from the request.

        NotBefore is backdated by AD CS's default clock skew allowance (10 minutes) and NotAfter is
        capped at the CA certificate's own NotAfter. Raises :class:`PkiError` for a bad CSR signature or a key
        that is neither RSA nor EC.
        """
        if not csr_signature_valid(csr):
            raise PkiError("the certificate request signature is invalid")
        public_key = csr.public_key()
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise PkiError(f"the certificate request has an unsupported {type(public_key).__name__} key")
        return self.issue(
            public_key=public_key,
            subject=csr.subject,
            dns_names=_requested_dns_names(csr),
            ekus=ekus,
            not_before=now - _CLOCK_SKEW,
            not_after=min(now + validity, self.certificate.not_valid_after_utc),
            signature_hash=signature_hash,
        )


class AuthorityRegistry:
    """The lab's CAs by name.

    Always holds ``lab-root`` ("CN=<Org> Lab Root CA") and ``lab-ca`` ("CN=<Org> Lab Issuing CA", issued
    by the root), like a two-level enterprise PKI; scenarios add more (an expired CA, a third-party root).
    CA keys are always fresh RSA-2048 keys (never pooled) so no CA shares a key with anything else.
    """

    def __init__(self, *, now: datetime, organization: str = "Contoso") -> None:
        self.now = now
        self._authorities: dict[str, Authority] = {}
        self._trusted_roots: list[str] = []
        self.add(
            LAB_ROOT,
            subject=f"CN={organization} Lab Root CA",
            not_before=timedelta(days=-365),
            not_after=timedelta(days=20 * 365),
        )
        self.lab_ca = self.add(
            LAB_CA,
            subject=f"CN={organization} Lab Issuing CA",
            not_before=timedelta(days=-365),
            not_after=timedelta(days=10 * 365),
            parent=LAB_ROOT,
        )

    def get(self, name: str) -> Authority:
        """The CA called ``name``; :class:`UnknownAuthority` (a :class:`PkiError`) names an unknown one."""
        try:
            return self._authorities[name]
        except KeyError:
            known = ", ".join(sorted(self._authorities))
            raise UnknownAuthority(f"unknown certificate authority {name!r} (known: {known})") from None

    def add(
        self,
        name: str,
        *,
        subject: str,
        not_before: timedelta,
        not_after: timedelta,
        parent: str | None = None,
        trusted: bool = True,
    ) -> Authority:
        """Create a CA valid from ``now + not_before`` to ``now + not_after``.

        ``parent`` None makes a self-signed root; ``trusted`` (roots only) says whether a domain-joined
        Windows host would have it in its trusted roots (see :meth:`trust_anchors`).
        """
        if name in self._authorities or name == "self":
            raise ValueError(f"certificate authority name {name!r} is reserved or already in use")
        key = generate_key("rsa", 2048)
        subject_name = parse_name(subject)
        issuer_name, issuer_key = subject_name, key
        chain: tuple[x509.Certificate, ...] = ()
        if parent is not None:
            issuer = self.get(parent)
            issuer_name, issuer_key, chain = issuer.certificate.subject, issuer.private_key, issuer.path
        certificate = sign_certificate(
            subject=subject_name,
            public_key=key.public_key(),
            issuer=issuer_name,
            issuer_key=issuer_key,
            not_before=self.now + not_before,
            not_after=self.now + not_after,
            is_ca=True,
        )
        authority = Authority(name, certificate, key, chain)
        if parent is None and trusted:
            self._trusted_roots.append(name)
        self._authorities[name] = authority
        return authority

    def trust_anchors(self) -> list[x509.Certificate]:
        """The trusted roots: what a domain-joined Windows host has in its Trusted Root store."""
        return [self._authorities[name].certificate for name in self._trusted_roots]

    def __iter__(self) -> Iterator[Authority]:
        return iter(self._authorities.values())

    def __contains__(self, name: object) -> bool:
        return name in self._authorities


def _requested_dns_names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return names.get_values_for_type(x509.DNSName)

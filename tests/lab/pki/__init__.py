# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's certificate factory: keys, certificates from specs, lab CAs, CSRs, PFX, AD CS-like enrolment.

Pure functions and classes with no lab state of their own; time always comes in as ``now``
(timezone-aware UTC). Everything the Exchange model needs is importable from here::

    from tests.lab.pki import AuthorityRegistry, CertificateSpec, make_certificate

    authorities = AuthorityRegistry(now=now)
    issued = make_certificate(CertificateSpec("CN=mail.contoso.lab", dns_names=("mail.contoso.lab",)),
                              now=now, authorities=authorities)
"""

from ._authority import LAB_CA, LAB_ROOT, Authority, AuthorityRegistry
from ._enrolment import DEFAULT_CONFIG, UNSUPPORTED_TEMPLATE, Enrolment, EnrolmentResult, EnrolmentStatus, TemplateSpec
from ._errors import BadPfxPassword, PkiError, UnknownAuthority
from ._factory import CertificateSpec, IssuedCertificate, make_certificate
from ._keys import DEFAULT_KEY_POOL, KeyInfo, KeyPool, KeyProvider, KeyType, PrivateKey, PublicKey, generate_key
from ._loading import load_certificates
from ._pfx import PfxContents, PfxEncryption, export_pfx, import_pfx, pfx_encryption
from ._requests import build_csr, csr_signature_valid, parse_csr, placeholder_for_request
from ._x509 import EKU_NAMES, SignatureHash, serial_hex, thumbprint

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_KEY_POOL",
    "EKU_NAMES",
    "LAB_CA",
    "LAB_ROOT",
    "UNSUPPORTED_TEMPLATE",
    "Authority",
    "AuthorityRegistry",
    "BadPfxPassword",
    "CertificateSpec",
    "Enrolment",
    "EnrolmentResult",
    "EnrolmentStatus",
    "IssuedCertificate",
    "KeyInfo",
    "KeyPool",
    "KeyProvider",
    "KeyType",
    "PfxContents",
    "PfxEncryption",
    "PkiError",
    "PrivateKey",
    "PublicKey",
    "SignatureHash",
    "TemplateSpec",
    "UnknownAuthority",
    "build_csr",
    "csr_signature_valid",
    "export_pfx",
    "generate_key",
    "import_pfx",
    "load_certificates",
    "make_certificate",
    "parse_csr",
    "pfx_encryption",
    "placeholder_for_request",
    "serial_hex",
    "thumbprint",
]

"""The EPS signature envelope: ``$prepare``'s digest and the check of a prescriber's signature.

``$prepare`` answers a base64 XML-DSig ``SignedInfo`` (exclusive c14n, RSA-SHA256, SHA-256)
whose ``DigestValue`` covers the canonical form of the prescription's signed content
(:func:`content_digest`, ADR 0012). The prescriber's system signs that ``SignedInfo`` and returns
an XML-DSig ``Signature`` (``SignedInfo``, ``SignatureValue``, ``X509Certificate``) in
``Provenance.signature.data``. :func:`verify_signature` checks, in order: a signature is there;
its ``SignedInfo`` uses our algorithms; its ``DigestValue`` is the digest of the prescription
submitted; its certificate is the one registered for the prescriber; the RSA signature over the
exclusive-c14n ``SignedInfo`` verifies with that certificate's key.

EPS references carry no URI (the content is detached), which ``signxml`` refuses to verify, so
the XML-DSig steps are done here with ``lxml`` (exclusive c14n) and ``cryptography`` (RSA).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any, Final

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from openspine.platform.errors import BadRequest

__all__ = [
    "MissingDigitalSignature",
    "SignatureRejected",
    "content_digest",
    "prepare_parameters",
    "signed_info",
    "verify_signature",
]

DSIG: Final = "http://www.w3.org/2000/09/xmldsig#"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
_NS: Final = {"ds": DSIG}
_PARSER: Final = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class MissingDigitalSignature(BadRequest):
    code = "MISSING_DIGITAL_SIGNATURE"
    display = "Digital signature not found."
    issue_type = "required"


class SignatureRejected(BadRequest):
    """400 FAILURE_TO_PROCESS_MESSAGE: the signature is there but does not hold."""

    code = "FAILURE_TO_PROCESS_MESSAGE"
    display = "Unable to process message. Information missing or invalid"
    issue_type = "processing"


def signed_info(digest_value: str) -> bytes:
    """The ``SignedInfo`` a prescriber signs, in the shape EPS's ``$prepare`` returns."""
    return (
        f'<SignedInfo xmlns="{DSIG}">'
        f'<CanonicalizationMethod Algorithm="{EXC_C14N}"></CanonicalizationMethod>'
        f'<SignatureMethod Algorithm="{RSA_SHA256}"></SignatureMethod>'
        f"<Reference><Transforms>"
        f'<Transform Algorithm="{EXC_C14N}"></Transform></Transforms>'
        f'<DigestMethod Algorithm="{SHA256}"></DigestMethod>'
        f"<DigestValue>{digest_value}</DigestValue></Reference></SignedInfo>"
    ).encode()


def prepare_parameters(digest_value: str, timestamp: str) -> dict[str, Any]:
    """The ``$prepare`` answer: ``digest`` (base64 ``SignedInfo``), ``timestamp``, ``algorithm``."""
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "digest", "valueString": base64.b64encode(signed_info(digest_value)).decode()},
            {"name": "timestamp", "valueString": timestamp},
            {"name": "algorithm", "valueString": "RS256"},
        ],
    }


def content_digest(signed_content: Mapping[str, Any]) -> str:
    """Base64 SHA-256 of the signed content's canonical JSON (keys sorted, no whitespace)."""
    canonical = orjson.dumps(signed_content, option=orjson.OPT_SORT_KEYS)
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode()


def _text(node: Any, path: str) -> str:
    found = node.find(path, _NS)
    return (found.text or "").strip() if found is not None else ""


def _attribute(node: Any, path: str) -> str:
    found = node.find(path, _NS)
    return str(found.get("Algorithm", "")) if found is not None else ""


def verify_signature(
    signature_data: str | None,
    *,
    expected_digest: str,
    registered_certificate: x509.Certificate | None,
) -> None:
    """Raise the EPS error for any reason the prescriber's signature does not hold."""
    if not signature_data:
        raise MissingDigitalSignature("Digital signature not found")
    try:
        xml = base64.b64decode(signature_data, validate=True)
        root = etree.fromstring(xml, parser=_PARSER)
    except (binascii.Error, ValueError, etree.XMLSyntaxError):
        raise SignatureRejected("The digital signature is not base64 XML-DSig") from None
    if root.tag != f"{{{DSIG}}}Signature":
        raise SignatureRejected("The digital signature is not an XML-DSig Signature")
    value = _text(root, "ds:SignatureValue")
    certificate_text = _text(root, "ds:KeyInfo/ds:X509Data/ds:X509Certificate")
    info = root.find("ds:SignedInfo", _NS)
    if info is None or not value or not certificate_text:
        raise MissingDigitalSignature("Digital signature not found")
    if (
        _attribute(info, "ds:CanonicalizationMethod") != EXC_C14N
        or _attribute(info, "ds:SignatureMethod") != RSA_SHA256
        or _attribute(info, "ds:Reference/ds:DigestMethod") != SHA256
    ):
        raise SignatureRejected("The digital signature must use exc-c14n, RSA-SHA256 and SHA-256")
    if _text(info, "ds:Reference/ds:DigestValue") != expected_digest:
        raise SignatureRejected("The digital signature does not match the prescription")
    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(certificate_text))
    except (binascii.Error, ValueError):
        raise SignatureRejected("The signing certificate cannot be read") from None
    if registered_certificate is None or certificate != registered_certificate:
        raise SignatureRejected("The signing certificate is not the prescriber's registered one")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureRejected("The signing certificate's key is not RSA")
    canonical = etree.tostring(info, method="c14n", exclusive=True)
    try:
        key.verify(base64.b64decode(value), canonical, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureRejected("The digital signature is not valid") from None

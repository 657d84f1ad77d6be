"""The EPS signature envelope: $prepare's SignedInfo and the checks on a prescriber's signature."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from openspine.eps.signature import (
    MissingDigitalSignature,
    SignatureRejected,
    content_digest,
    prepare_parameters,
    signed_info,
    verify_signature,
)
from tests.conftest import REFERENCE

CONTENT = {"prescriptionId": "060CC0-A83008-5A2E6T", "patient": "9000000009", "items": [1, 2]}


def certificate(key: rsa.RSAPrivateKey, name: str = "Dr Amelia Carter") -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def sign(key: rsa.RSAPrivateKey, cert: x509.Certificate, info: bytes) -> str:
    """What a prescriber's system does with $prepare's digest."""
    canonical = etree.tostring(etree.fromstring(info), method="c14n", exclusive=True)
    value = base64.b64encode(key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())).decode()
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    inner = info.decode().split(">", 1)[1].rsplit("</SignedInfo>", 1)[0]
    xml = (
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#">'
        f"<SignedInfo>{inner}</SignedInfo><SignatureValue>{value}</SignatureValue>"
        f"<KeyInfo><X509Data><X509Certificate>{der}</X509Certificate></X509Data></KeyInfo>"
        "</Signature>"
    )
    return base64.b64encode(xml.encode()).decode()


@pytest.fixture(scope="module")
def prescriber() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, certificate(key)


def test_prepare_returns_the_eps_signed_info_shape() -> None:
    digest = content_digest(CONTENT)
    parameters = prepare_parameters(digest, "2026-11-23T12:00:00+00:00")
    names = [p["name"] for p in parameters["parameter"]]
    assert names == ["digest", "timestamp", "algorithm"]
    info = base64.b64decode(parameters["parameter"][0]["valueString"])
    assert info == signed_info(digest)
    assert f"<DigestValue>{digest}</DigestValue>".encode() in info
    example = REFERENCE / "eps/examples/primary-care/acute/nominated-pharmacy/medical-prescriber"
    path = example / "1-Prepare-Response-200_OK.json"
    if path.is_file():
        import json

        theirs = base64.b64decode(json.loads(path.read_text())["parameter"][0]["valueString"])
        digest_theirs = theirs.decode().split("<DigestValue>")[1].split("</DigestValue>")[0]
        assert signed_info(digest_theirs) == theirs  # the same bytes as NHS EPS's $prepare


def test_canonical_digest_ignores_key_order_only() -> None:
    reordered = {"items": [1, 2], "patient": "9000000009", "prescriptionId": "060CC0-A83008-5A2E6T"}
    assert content_digest(reordered) == content_digest(CONTENT)
    assert content_digest({**CONTENT, "items": [2, 1]}) != content_digest(CONTENT)


def test_a_good_signature_verifies(prescriber: tuple[rsa.RSAPrivateKey, x509.Certificate]) -> None:
    key, cert = prescriber
    digest = content_digest(CONTENT)
    data = sign(key, cert, signed_info(digest))
    verify_signature(data, expected_digest=digest, registered_certificate=cert)


def test_every_way_a_signature_can_fail(
    prescriber: tuple[rsa.RSAPrivateKey, x509.Certificate],
) -> None:
    key, cert = prescriber
    digest = content_digest(CONTENT)
    good = sign(key, cert, signed_info(digest))
    with pytest.raises(MissingDigitalSignature):
        verify_signature(None, expected_digest=digest, registered_certificate=cert)
    with pytest.raises(SignatureRejected):  # not base64 XML
        verify_signature("not base64!", expected_digest=digest, registered_certificate=cert)
    tampered = content_digest({**CONTENT, "patient": "9000000017"})
    with pytest.raises(SignatureRejected, match="does not match"):
        verify_signature(good, expected_digest=tampered, registered_certificate=cert)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_cert = certificate(other_key, "Someone Else")
    with pytest.raises(SignatureRejected, match="registered"):
        verify_signature(good, expected_digest=digest, registered_certificate=other_cert)
    forged = sign(other_key, cert, signed_info(digest))  # the right certificate, the wrong key
    with pytest.raises(SignatureRejected, match="not valid"):
        verify_signature(forged, expected_digest=digest, registered_certificate=cert)
    xml = base64.b64decode(good).decode()
    sha1 = xml.replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    )
    with pytest.raises(SignatureRejected, match="RSA-SHA256"):
        verify_signature(
            base64.b64encode(sha1.encode()).decode(),
            expected_digest=digest,
            registered_certificate=cert,
        )
    empty_value = (
        xml.split("<SignatureValue>")[0]
        + "<SignatureValue></SignatureValue>"
        + xml.split("</SignatureValue>")[1]
    )
    with pytest.raises(MissingDigitalSignature):
        verify_signature(
            base64.b64encode(empty_value.encode()).decode(),
            expected_digest=digest,
            registered_certificate=cert,
        )


def test_the_nhs_unsigned_example_is_missing_its_signature() -> None:
    """The NHS examples carry a Signature with an empty SignatureValue: not signed."""
    import json

    path = (
        REFERENCE
        / "eps/examples/primary-care/acute/nominated-pharmacy/medical-prescriber"
        / "1-Process-Request-Send-200_OK.json"
    )
    if not path.is_file():
        pytest.skip(f"NHS reference material not present at {path}")
    bundle = json.loads(path.read_text())
    provenance = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"
    )
    with pytest.raises((MissingDigitalSignature, SignatureRejected)):
        verify_signature(
            provenance["signature"][0]["data"], expected_digest="x", registered_certificate=None
        )


def test_external_entities_are_not_resolved() -> None:
    attack = (
        '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignatureValue>&x;</SignatureValue></Signature>'
    )
    with pytest.raises((MissingDigitalSignature, SignatureRejected)):
        verify_signature(
            base64.b64encode(attack.encode()).decode(),
            expected_digest="x",
            registered_certificate=None,
        )

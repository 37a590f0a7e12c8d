"""Keys for the tests of external identity providers' tokens."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_pair() -> tuple[rsa.RSAPrivateKey, str]:
    """A fresh RS256 key and its public half in PEM, as a site would configure it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()

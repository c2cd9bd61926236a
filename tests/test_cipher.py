"""AESCipher: keys, round trips, damaged ciphertext, and the stored layout
(a 12-byte nonce, the 16-byte tag, then the encrypted bytes)."""

from __future__ import annotations

import os
from base64 import b64decode, b64encode
from typing import Callable, Dict, Tuple

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing_rs.cipher import AESCipher
from eventsourcing_rs.persistence import Cipher
from hypothesis import given, settings
from hypothesis import strategies as st

NONCE, TAG = 12, 16


@pytest.mark.parametrize("size", [16, 24, 32])
def test_create_key(size: int) -> None:
    key = AESCipher.create_key(size)
    assert isinstance(key, str)
    assert len(b64decode(key)) == size
    assert AESCipher.create_key(size) != key
    assert AESCipher(key).key == b64decode(key)


@pytest.mark.parametrize("size", [0, 1, 8, 15, 17, 31, 33, 64])
def test_bad_key_size(size: int) -> None:
    with pytest.raises(ValueError, match=str(size)):
        AESCipher.create_key(size)
    with pytest.raises(ValueError, match=str(size)):
        AESCipher(b64encode(os.urandom(size)).decode())


def test_is_a_cipher() -> None:
    assert isinstance(AESCipher(AESCipher.create_key(16)), Cipher)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([16, 24, 32]))
def test_round_trip(plaintext: bytes, size: int) -> None:
    cipher = AESCipher(AESCipher.create_key(size))
    ciphertext = cipher.encrypt(plaintext)
    assert len(ciphertext) == NONCE + TAG + len(plaintext)
    assert cipher.decrypt(ciphertext) == plaintext
    # A fresh nonce each time.
    assert cipher.encrypt(plaintext) != ciphertext
    if len(plaintext) >= 8:
        assert plaintext not in ciphertext


def test_layout_is_nonce_tag_data() -> None:
    key = AESCipher.create_key(32)
    cipher = AESCipher(key)
    aead = AESGCM(b64decode(key))
    plaintext = b"the layout of the reference library" * 3

    ciphertext = cipher.encrypt(plaintext)
    nonce = ciphertext[:NONCE]
    tag = ciphertext[NONCE : NONCE + TAG]
    data = ciphertext[NONCE + TAG :]
    assert aead.decrypt(nonce, data + tag, None) == plaintext

    # And the other way round: what the primitive seals, laid out so, decrypts.
    nonce = os.urandom(NONCE)
    sealed = aead.encrypt(nonce, plaintext, None)
    laid_out = nonce + sealed[-TAG:] + sealed[:-TAG]
    assert cipher.decrypt(laid_out) == plaintext


def flip(data: bytes, index: int, bit: int = 1) -> bytes:
    return data[:index] + bytes([data[index] ^ bit]) + data[index + 1 :]


MAC = "MAC check failed"
DAMAGE: Dict[str, Tuple[Callable[[bytes], bytes], str]] = {
    "short nonce": (lambda c: c[: NONCE - 1], "nonce"),
    "empty": (lambda c: b"", "nonce"),
    "short tag": (lambda c: c[: NONCE + TAG - 1], "tag"),
    "no tag": (lambda c: c[:NONCE], "tag"),
    "truncated data": (lambda c: c[:-1], MAC),
    "extra byte": (lambda c: c + b"\x00", MAC),
    "flipped nonce bit": (lambda c: flip(c, 0), MAC),
    "flipped tag bit": (lambda c: flip(c, NONCE, 0x80), MAC),
    "flipped data bit": (lambda c: flip(c, len(c) - 1, 0x10), MAC),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_damaged_ciphertext_is_a_value_error(name: str) -> None:
    damage, message = DAMAGE[name]
    cipher = AESCipher(AESCipher.create_key(16))
    ciphertext = cipher.encrypt(b"some plaintext")
    damaged = damage(ciphertext)
    assert damaged != ciphertext
    with pytest.raises(ValueError, match=message):
        cipher.decrypt(damaged)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_another_key_fails(size: int) -> None:
    ciphertext = AESCipher(AESCipher.create_key(size)).encrypt(b"secret")
    with pytest.raises(ValueError, match="MAC check failed"):
        AESCipher(AESCipher.create_key(size)).decrypt(ciphertext)


def test_empty_plaintext() -> None:
    cipher = AESCipher(AESCipher.create_key(24))
    ciphertext = cipher.encrypt(b"")
    assert len(ciphertext) == NONCE + TAG
    assert cipher.decrypt(ciphertext) == b""

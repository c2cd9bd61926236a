"""Encryption of stored event state with AES in GCM mode.

Ciphertexts are laid out as the reference lays them out (a 12-byte nonce,
the 16-byte tag, then the encrypted bytes), so data encrypted by either
library decrypts with the other given the same key.
"""

import os
from base64 import b64decode, b64encode

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventsourcing_rs.persistence import Cipher

_NONCE_SIZE = 12
_TAG_SIZE = 16


class AESCipher(Cipher):
    """AES-GCM with a 128, 192 or 256-bit key given in base64."""

    KEY_SIZES = (16, 24, 32)

    @staticmethod
    def create_key(num_bytes: int) -> str:
        """Returns a new random key of ``num_bytes`` bytes, in base64."""
        AESCipher.check_key_size(num_bytes)
        return b64encode(AESCipher.random_bytes(num_bytes)).decode("utf8")

    @staticmethod
    def check_key_size(num_bytes: int) -> None:
        if num_bytes not in AESCipher.KEY_SIZES:
            raise ValueError(f"Invalid key size: {num_bytes} not in {AESCipher.KEY_SIZES}")

    @staticmethod
    def random_bytes(num_bytes: int) -> bytes:
        return os.urandom(num_bytes)

    def __init__(self, cipher_key: str):
        key = b64decode(cipher_key.encode("utf8"))
        AESCipher.check_key_size(len(key))
        self.key = key
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = AESCipher.random_bytes(_NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, plaintext, None)
        # AESGCM appends the tag; the stored layout puts it before the data.
        return nonce + sealed[-_TAG_SIZE:] + sealed[:-_TAG_SIZE]

    def decrypt(self, ciphertext: bytes) -> bytes:
        nonce = ciphertext[:_NONCE_SIZE]
        if len(nonce) != _NONCE_SIZE:
            raise ValueError("Damaged cipher text: invalid nonce length")
        tag = ciphertext[_NONCE_SIZE : _NONCE_SIZE + _TAG_SIZE]
        if len(tag) != _TAG_SIZE:
            raise ValueError("Damaged cipher text: invalid tag length")
        encrypted = ciphertext[_NONCE_SIZE + _TAG_SIZE :]
        try:
            return self._aead.decrypt(nonce, encrypted + tag, None)
        except InvalidTag:
            raise ValueError(
                "Cipher text is damaged: MAC check failed (wrong key, or the data was altered)"
            ) from None

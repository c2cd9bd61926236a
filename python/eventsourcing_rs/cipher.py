"""Encryption of stored event state with AES in GCM mode.

Ciphertexts are laid out as the reference lays them out (a 12-byte nonce,
the 16-byte tag, then the encrypted bytes), so data encrypted by either
library decrypts with the other given the same key.

Beyond the reference, with ``CIPHER_BIND_TO_POSITION=yes`` each ciphertext
is bound to its event's aggregate id, version and topic (AES-GCM
associated data), so a row's state moved or swapped into another row, or
put under another topic, no longer decrypts. Such ciphertexts start with
a 4-byte marker; states written without the setting (or by the
reference) are still read, unbound.
"""

import os
from base64 import b64decode, b64encode
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from eventsourcing_rs.persistence import Cipher

_NONCE_SIZE = 12
_TAG_SIZE = 16
# Starts a ciphertext bound to its event's position.
_BOUND = b"ESB1"


def _position(originator_id: UUID, originator_version: int, topic: str) -> bytes:
    """The associated data that binds a ciphertext to its row: the
    aggregate, the version and the topic (so neither another event's state
    nor a snapshot's, at the same version, can stand in for it)."""
    return b"\x00".join(
        (
            b"eventsourcing_rs position",
            originator_id.bytes,
            str(originator_version).encode(),
            topic.encode("utf8", "surrogatepass"),
        )
    )


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

    # Set (by the factory, from CIPHER_BIND_TO_POSITION) to have mappers
    # call encrypt_at and decrypt_at.
    bound_to_position = False

    def encrypt_at(
        self, plaintext: bytes, originator_id: UUID, originator_version: int, topic: str
    ) -> bytes:
        """The ciphertext of ``plaintext``, bound to the event's row."""
        nonce = AESCipher.random_bytes(_NONCE_SIZE)
        position = _position(originator_id, originator_version, topic)
        sealed = self._aead.encrypt(nonce, plaintext, position)
        return _BOUND + nonce + sealed[-_TAG_SIZE:] + sealed[:-_TAG_SIZE]

    def decrypt_at(
        self, ciphertext: bytes, originator_id: UUID, originator_version: int, topic: str
    ) -> bytes:
        """The plaintext of a ciphertext bound to this event's row, or of
        an unbound one (written without the setting)."""
        if not ciphertext.startswith(_BOUND):
            return self.decrypt(ciphertext)
        try:
            return self._open(
                ciphertext[len(_BOUND) :],
                _position(originator_id, originator_version, topic),
            )
        except ValueError:
            # Unbound, with a nonce that happens to start like the marker?
            try:
                return self.decrypt(ciphertext)
            except ValueError:
                pass
            raise ValueError(
                "Cipher text is damaged: MAC check failed for event "
                f"{originator_version} of aggregate {originator_id} (wrong key, the data "
                "was altered, or it was moved from another event's row or topic)"
            ) from None

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self._open(ciphertext, None)

    def _open(self, ciphertext: bytes, associated: "bytes | None") -> bytes:
        nonce = ciphertext[:_NONCE_SIZE]
        if len(nonce) != _NONCE_SIZE:
            raise ValueError("Damaged cipher text: invalid nonce length")
        tag = ciphertext[_NONCE_SIZE : _NONCE_SIZE + _TAG_SIZE]
        if len(tag) != _TAG_SIZE:
            raise ValueError("Damaged cipher text: invalid tag length")
        encrypted = ciphertext[_NONCE_SIZE + _TAG_SIZE :]
        try:
            return self._aead.decrypt(nonce, encrypted + tag, associated)
        except InvalidTag:
            raise ValueError(
                "Cipher text is damaged: MAC check failed (wrong key, or the data was altered)"
            ) from None

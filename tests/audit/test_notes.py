"""C2SP signed notes: the reference implementation's own vectors, and manglings refused."""

from __future__ import annotations

import pytest

from audit.notes import NoteError, NoteSigner, NoteVerifier, key_id, open_note, split_note

# From the documentation of golang.org/x/mod/sumdb/note, the format's reference implementation.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = GO_TEXT + (
    "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2"
    "pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# From c2sp.org/signed-note.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6Tf"
    "Xppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_reference_key_signs_the_reference_note_byte_for_byte() -> None:
    signer = NoteSigner.from_text(GO_SKEY)
    assert signer.to_text() == GO_SKEY
    assert signer.verifier().to_text() == GO_VKEY
    assert signer.sign(GO_TEXT) == GO_NOTE  # Ed25519 is deterministic (RFC 8032)
    assert open_note(GO_NOTE, NoteVerifier.from_text(GO_VKEY)) == GO_TEXT
    assert key_id("PeterNeumann", signer.verifier().public).hex() == "c74f20a3"


def test_spec_example_verifies() -> None:
    assert (
        open_note(SPEC_NOTE, NoteVerifier.from_text(SPEC_VKEY)) == "This is an example message.\n"
    )


def test_every_mangled_key_is_refused() -> None:
    for text, parse in ((GO_VKEY, NoteVerifier.from_text), (GO_SKEY, NoteSigner.from_text)):
        for i in range(len(text)):
            mangled = text[:i] + chr(ord(text[i]) + 1) + text[i + 1 :]
            with pytest.raises(NoteError):
                parse(mangled)
        for cut in range(1, len(text)):
            with pytest.raises(NoteError):
                parse(text[:cut])


def test_a_note_from_another_key_or_changed_text_is_refused() -> None:
    other = NoteSigner.generate("PeterNeumann")  # same name, another key
    trusted = NoteVerifier.from_text(GO_VKEY)
    with pytest.raises(NoteError, match="not signed by the trusted key"):
        open_note(other.sign(GO_TEXT), trusted)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace("answer", "ANSWER"), trusted)
    flipped = GO_NOTE.replace("x08go", "x08gp")
    with pytest.raises(NoteError):
        open_note(flipped, trusted)


def test_extra_signatures_from_unknown_keys_are_ignored() -> None:
    other = NoteSigner.generate("witness.example")
    both = GO_NOTE + other.sign(GO_TEXT).split("\n\n", 1)[1]
    assert open_note(both, NoteVerifier.from_text(GO_VKEY)) == GO_TEXT
    assert len(split_note(both)[1]) == 2


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_NOTE.replace("— ", "-- "),
        GO_NOTE.rstrip("\n"),
        "\n\n— a AAAA\n",
        GO_TEXT + "\n— PeterNeumann !!!!\n",
        "a\x01b\n\n— x AAAAAAAA\n",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(NoteError):
        split_note(note)


def test_text_a_note_cannot_carry_is_refused() -> None:
    signer = NoteSigner.generate("k")
    for text in ("no newline", "blank\n\nline\n", "\nleading\n"):
        with pytest.raises(NoteError):
            signer.sign(text)
    with pytest.raises(NoteError):
        NoteSigner.generate("has space")
    assert "secret" in repr(signer) and signer.to_text()[20:40] not in repr(signer)

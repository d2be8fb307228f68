"""Password channels (パスワードの別送経路): a folder, another SFTP account, or retrieval.

Each puts the password document of one sealed file on a route that is never the file's own
(the configuration refuses that). The document is written 0600 under a name fixed by the
transfer, so a repeat replaces it. It never logs, returns or records the password itself.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.routes import PasswordRoute, SftpEndpoint
from gateway.errors import PartnerUnavailable
from gateway.i18n import N_
from gateway.state.spool import write_atomic
from gateway.transports import Parcel, Receipt
from gateway.transports.local import refuse_links

#: The spool file that holds a password until a designated receiving handler retrieves it.
RETRIEVABLE = "retrievable-password"
#: What a transfer records as its password's place while the password waits for retrieval.
RETRIEVAL_MARK = "retrieval"


class FolderChannel:
    """Writes `NAME.password` (0600) into a folder of its own."""

    kind = "folder"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def issue(self, parcel: Parcel, document: bytes) -> Receipt:
        """Raises: PartnerUnavailable when the folder cannot be written."""
        path = self.folder / f"{parcel.name}.password"
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Checked at every issue: a folder swapped for a link (say, to the inbox) would put
            # the password beside its file, which the configuration check can no longer see.
            refuse_links(self.folder, "the password folder")
            write_atomic(path, document, mode=0o600)
        except OSError as exc:
            raise PartnerUnavailable(
                N_("cannot write the password to {folder}: {value}").format(
                    folder=self.folder, value=exc.strerror or exc)
            ) from exc
        return Receipt(self.kind, str(path), {})


class SftpChannel:
    """Uploads `NAME.password` (0600) to an SFTP account other than the file's."""

    kind = "sftp"

    def __init__(self, endpoint: SftpEndpoint) -> None:
        self.endpoint = endpoint

    def issue(self, parcel: Parcel, document: bytes) -> Receipt:
        """Raises: PartnerUnavailable, DeliveryRefused, HostKeyRefused (see gateway.transports)."""
        from gateway.transports.sftp import put_small  # paramiko only where it is used

        return put_small(self.endpoint, f"{parcel.name}.password", document)


class RetrievalChannel:
    """Keeps the password (0600, in the transfer's spool folder) until it is asked for.

    A designated receiving handler asks with a signed request (`tachiai password ID --key
    KEY`); the retrieval is a ledger event, and the password is erased once handed out.
    """

    kind = "retrieval"

    def __init__(self, spool_folder: Path) -> None:
        self.spool_folder = spool_folder

    def issue(self, parcel: Parcel, document: bytes) -> Receipt:
        """Raises: PartnerUnavailable when the spool cannot be written (it is ours: unlikely)."""
        try:
            write_atomic(self.spool_folder / RETRIEVABLE, document, mode=0o600)
        except OSError as exc:
            raise PartnerUnavailable(
                N_("cannot keep the password for retrieval: {value}").format(
                    value=exc.strerror or exc)
            ) from exc
        return Receipt(self.kind, "awaiting retrieval by a designated receiving handler", {})


def channel_for(
    route: PasswordRoute, spool_folder: Path
) -> FolderChannel | SftpChannel | RetrievalChannel:
    """The channel a configured route names."""
    if route.kind == "folder" and route.folder is not None:
        return FolderChannel(route.folder)
    if route.kind == "sftp" and route.sftp is not None:
        return SftpChannel(route.sftp)
    return RetrievalChannel(spool_folder)

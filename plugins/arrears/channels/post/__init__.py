"""A paper notice by post (CONTRACT §7): one PDF per message in ``<outbox>/<D>/post/`` with
``manifest.csv`` (``account_id, file, idem_key, sha256``), drawn with the lawyer letters' ReportLab
machinery, byte-identical on every rerun. The batch is the hand-over to the print room, so the
channel has no connection of its own; the address is the service address of the extract.
Letters are not bound to the contact window (nobody is called at night by a print run)."""
from __future__ import annotations

from arrears.channels.base import Channel
from arrears.delivery.render import subject_line, text_from


def compose(m) -> tuple[str, str, str]:
    return subject_line(m), text_from("post.txt.j2", m), ""


def clean_address(text: str) -> str:
    return " ".join((text or "").split())


def file_default(outbox):
    from arrears.channels.post.batch import PostBatchTransport
    return PostBatchTransport(outbox)


CHANNEL = Channel(
    name="post", address_column="service_address", clean_address=clean_address,
    templates=("post.txt.j2",), compose=compose,
    connection_id="", gateway=file_default, file_default=file_default,
    window_bound=False)

"""kombu's filesystem transport (the embedded default's broker) with whole messages only.

kombu 5.7's producer opens ``<time>_<uuid>.<queue>.msg`` in the queue folder and then writes it, while a consumer
takes any file with that name, locked or not: a worker polling at that moment read an empty or partial message,
failed to decode it ("Unrecoverable error: JSONDecodeError") and stopped, which stopped ``make run`` with it, and
the message was lost. Here the producer writes the message under a name no consumer takes (``….msg.part``) and
renames it into place, which is atomic within a folder: a consumer sees the whole message or none.

sre4ai_web/celery.py makes ``filesystem://`` URLs mean this transport, for every process that imports the app.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # kombu's filesystem Channel already differs from its base here (``payload``, ``**kwargs``); this is its signature.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The name kombu gives a message: consumers take files in name order, so time first.
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        body = str_to_bytes(dumps(payload))
        partial = f"{path}.part"  # consumers take only names ending in ".<queue>.msg"
        try:
            with open(partial, "wb") as file:
                file.write(body)
            os.replace(partial, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

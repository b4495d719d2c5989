#   Copyright 2026 - present The PyMC Developers
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
"""The Trainer's stream of batches, and when it is kept from one fit to the next."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymc.variational.streaming.dataloader import DataLoader
from pymc.variational.streaming.prefetch import BatchIterator
from pymc.variational.streaming.rules import LabelRule

__all__ = ["TrainingStream"]


class TrainingStream:
    """The endless batches a Trainer steps on, opened on its loader.

    Each batch serves one step, so window memory is reused. With the loader's
    ``persistent_workers`` the stream, and its producer, stay open after a fit, and the
    next fit goes on with them when they stand where it starts and no setting of the
    loader has changed; otherwise a new stream is opened.
    """

    def __init__(self):
        self.stream: BatchIterator | None = None
        self._settings: tuple = ()

    def open(
        self,
        loader: DataLoader,
        position: tuple[int, int],
        dtype: Any,
        rules: Mapping[int, LabelRule],
        seed: int,
    ) -> BatchIterator:
        """The batches from ``position``: the kept stream when it can go on, else a new one."""
        settings = _settings(loader)
        kept = self.stream
        if kept is None or (kept.position, kept.seed, self._settings) != (position, seed, settings):
            self.close()
            # Measured: a decoding thread beside the producer slows the fit (three busy
            # threads on two cores), so the Trainer's producer decodes and shuffles in turn.
            self.stream = loader.iterate(
                position,
                dtype,
                recycle=True,
                overlap=False,
                workers=loader.trainer_workers,
                rules=rules,
                seed=seed,
            )
            self._settings = settings
        return self.stream

    def close(self) -> None:
        """Stop the producer."""
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def _settings(loader: DataLoader) -> tuple:
    """What a kept stream was opened with: the loader and everything that shapes its rows."""
    return (
        loader,
        loader.source,
        loader.transform,
        loader.shuffle,
        loader.drop_last,
        loader.fields,
        loader.sample_shape,
        loader.batch_size,
        loader.window_rows,
        loader.prefetch,
        loader.workers,
        loader.cache,
    )

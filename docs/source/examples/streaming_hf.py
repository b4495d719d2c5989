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
"""Streaming a click log from the Hugging Face Hub.

The seed's data path: parquet files of a dataset repository on the Hub, read with
``hf://`` URLs (``pip install "pymc-streaming[hf]"``), never downloaded whole. The rows are
Criteo click-log rows in Criteo's own columns (a click label and 13 integer counters with
missing values), so the script does what a user does with them:

1. count the rows from the parquet footers (``len(loader)``), without reading the data;
2. compute global statistics of ``log1p(count)`` in one streamed pass (``column_stats``),
   so that the model's features are standardized the same way in every file;
3. fit the seed's logistic regression with the Trainer's defaults;
4. predict click probabilities for rows streamed from the same files.

``REPOSITORY`` names a dataset laid out as the Hub's parquet exports are
(``data/*.parquet``); point it at yours, and set ``HF_TOKEN`` for a private one. The
project's tests run this script unchanged against a local stand-in for the Hub (its
``HF_ENDPOINT``), serving the real Criteo sample rows.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

import pymc as pm

from pymc.variational.streaming import DataLoader, Trainer, column_stats, parquet_source

REPOSITORY = "hf://datasets/pymc-devs/criteo-clicks-sample"
COUNTS = [f"I{i}" for i in range(1, 14)]


def log_counts(block: np.ndarray) -> np.ndarray:
    """``log1p`` of the counters (missing and negative counts as 0); the label as it is."""
    out = block.copy()
    out[:, :13] = np.log1p(np.clip(np.nan_to_num(block[:, :13], nan=0.0), 0.0, None))
    return out


def main(repository: str = REPOSITORY, steps: int = 8000, batch_size: int = 512) -> dict:
    warnings.simplefilter("ignore", FutureWarning)
    source = parquet_source(f"{repository}/data/*.parquet", columns=[*COUNTS, "label"])
    print(f"{len(source.shards())} shards, {source.num_rows:,d} rows, read from the footers")

    stats = column_stats(source, transform=log_counts)
    scale = stats.standardizer(columns=COUNTS)
    print(
        f"click rate {stats.mean[13]:.4f}; most missing counter: {COUNTS[int(np.argmax(stats.missing[:13]))]}"
    )

    loader = DataLoader(
        source,
        batch_size=batch_size,
        sample_shape=(14,),
        seed=0,
        transform=lambda x: scale(log_counts(x)),
    )
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=14)
        batch = pm.Data("batch", np.zeros((batch_size, 14)))
        logit = b[0] + pm.math.dot(batch[:, :13], b[1:])
        pm.Bernoulli("click", logit_p=logit, observed=batch[:, 13], total_size=len(loader))
    trainer = Trainer(dataloader=loader, model=model, random_seed=1)
    approx = trainer.fit(steps)
    mean, sd = approx.mean.eval(), approx.std.eval()
    print(f"\n{'coefficient':<12}{'mean':>9}{'sd':>8}")
    for name, m, s in zip(["intercept", *COUNTS], mean, sd):
        print(f"{name:<12}{m:>9.3f}{s:>8.3f}")
    print(f"converged: {trainer.convergence_report.converged}")

    rows = DataLoader(
        source, batch_size=4096, sample_shape=(14,), transform=lambda x: scale(log_counts(x))
    )
    predicted = trainer.predict(rows, var_names="click", random_seed=2)
    print(
        f"\npredicted click probability: mean {predicted['click'].mean():.4f} over {len(predicted['click']):,d} rows"
    )
    return {"mean": mean, "sd": sd, "rows": source.num_rows, "predicted": predicted["click"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", default=REPOSITORY)
    parser.add_argument("--steps", type=int, default=8000)
    args = parser.parse_args()
    main(args.repository, args.steps)

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
"""No credential ever printed or stored.

A recognisable secret is planted as a Hub token (in storage_options and as HF_TOKEN), as
the password of an http://user:secret@host URL and as a signed query string. Then every
path that prints or stores is driven: errors (401, 403, 404, parse errors) with their
whole traceback, retry warnings and logs, repr of sources and loaders, state_dict(),
checkpoint files, the progress bar. The secret must appear in none of them.
"""

import json
import logging
import pickle
import traceback

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pymc as pm

from pymc.variational.streaming import DataLoader, RetryPolicy, Trainer, parquet_source

pytest.importorskip("huggingface_hub")

TOKEN = "hf_SECRETtoken4d7e9a1c"
PASSWORD = "SECRETpassw0rd8b2f"
SIGNATURE = "SECRETsig5c3e1f9a7b"
SECRETS = (TOKEN, PASSWORD, SIGNATURE)


def frame(n=2000):
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "y": (rng.random(n) < 0.3).astype(float)})


@pytest.fixture(scope="module")
def repos(hub):
    base = hub.root / "datasets" / "pymc-devs"
    for name, private in (("secret-clicks", True), ("open-clicks", False)):
        folder = base / name / "main" / "data"
        folder.mkdir(parents=True)
        pq.write_table(
            pa.Table.from_pandas(frame(), preserve_index=False), folder / "part-0.parquet"
        )
        if private:
            (base / name / "_repo.json").write_text(
                json.dumps({"private": True, "tokens": [TOKEN]})
            )
    (base / "open-clicks" / "main" / "data" / "broken.parquet").write_bytes(
        b"PAR1 not really parquet PAR1"
    )
    return base


@pytest.fixture(autouse=True)
def fresh_client(hub):
    from huggingface_hub import HfFileSystem

    HfFileSystem.clear_instance_cache()
    hub.clear_faults()
    yield
    hub.clear_faults()  # the hub is shared by the whole session


class Record:
    """Everything a user could see or a file could keep."""

    def __init__(self):
        self.texts: list[str] = []

    def error(self, action):
        try:
            action()
        except Exception as err:
            self.texts.append("".join(traceback.format_exception(err)))
            # Nothing reachable from the error keeps the original (huggingface_hub's
            # errors hold the request's headers, token included).
            assert err.__context__ is None and err.__cause__ is None, repr(err.__context__)
            self.texts.append(pickle.dumps(err).decode("latin-1"))
            return err
        raise AssertionError("expected an error")

    def add(self, value):
        self.texts.append(value if isinstance(value, str) else repr(value))


def model_for(loader):
    with pm.Model() as model:
        b = pm.Normal("b", 0.0, 1.5, shape=2)
        batch = pm.Data("batch", np.zeros((loader.batch_size, 2)))
        pm.Bernoulli(
            "y", logit_p=b[0] + b[1] * batch[:, 0], observed=batch[:, 1], total_size=len(loader)
        )
    return model


def test_no_secret_in_any_output_or_file(hub, repos, tmp_path, monkeypatch, caplog, capsys):
    record = Record()
    private = "hf://datasets/pymc-devs/secret-clicks/data/*.parquet"
    resolve = f"{hub.url}/datasets/pymc-devs/open-clicks/resolve/main/data"
    with_password = resolve.replace("http://", f"http://reader:{PASSWORD}@")
    signed = f"{resolve}/part-0.parquet?X-Amz-Expires=3600&X-Amz-Signature={SIGNATURE}"
    with caplog.at_level(logging.DEBUG):
        # Errors: a wrong token (401), a token of another scope (403 from a fault), files
        # that do not exist (404) behind a password and a signature, a file that is not
        # parquet, and the same secrets in retry warnings.
        record.error(
            lambda: parquet_source(private, storage_options={"token": TOKEN + "x"}, retry=1)
        )
        hub.add_fault(path="*/resolve/*/part-0.parquet", action="status", status=403, times=None)
        record.error(
            lambda: list(
                DataLoader(
                    parquet_source(private, storage_options={"token": TOKEN}), batch_size=100
                ).iter_epoch(0)
            )
        )
        hub.clear_faults()
        record.error(lambda: parquet_source(f"{with_password}/nope.parquet", retry=1))
        record.error(lambda: parquet_source(signed.replace("part-0", "nope"), retry=1))
        record.error(lambda: parquet_source(f"{with_password}/broken.parquet", retry=1))
        hub.add_fault(path="*/resolve/*/part-0.parquet", action="status", status=503, times=None)
        record.error(
            lambda: list(
                DataLoader(
                    parquet_source(signed, retry=RetryPolicy(tries=2, wait=0.01)), batch_size=100
                ).iter_epoch(0)
            )
        )
        hub.clear_faults()
        # Working sources: repr, state_dict and a checkpoint of a fit with a progress bar.
        for source in (
            parquet_source(private, storage_options={"token": TOKEN}),
            parquet_source(f"{with_password}/part-0.parquet"),
            parquet_source(signed),
        ):
            loader = DataLoader(source, batch_size=100, seed=1)
            record.add(source)
            record.add(loader)
            record.add(json.dumps(loader.state_dict()))
            record.add([s.name for s in source.shards()])
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        loader = DataLoader(parquet_source(private), batch_size=100, seed=1)
        trainer = Trainer(dataloader=loader, model=model_for(loader), progressbar=True)
        trainer.fit(30)
        trainer.save_checkpoint(tmp_path / "fit.npz")
        record.add((tmp_path / "fit.npz").read_bytes().decode("latin-1"))
    captured = capsys.readouterr()
    record.add(captured.out + captured.err)
    record.add("\n".join(r.getMessage() for r in caplog.records))
    assert len(record.texts) > 15
    assert any("retry 1 of 1" in t for t in record.texts)
    for text in record.texts:
        for secret in SECRETS:
            assert secret not in text, text[:2000]


def test_a_path_of_the_wrong_type_is_shown_without_its_password():
    # The TypeError repeats what it was given: a list holding a URL with a password.
    with pytest.raises(
        TypeError, match=r"got \['s3://reader:\*\*\*@bucket/x\.parquet', None\]"
    ) as caught:
        parquet_source([f"s3://reader:{PASSWORD}@bucket/x.parquet", None])
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("secret_in", ["password", "signature"])
def test_a_dask_partition_that_fails_on_a_url_is_shown_redacted(hub, repos, secret_in):
    # The worker's error repeats the URL the partition reads (a file gone, a signed link
    # expired): it reached the user whole, and chained.
    dd = pytest.importorskip("dask.dataframe")
    from pymc.variational.streaming import dask_source

    resolve = f"{hub.url}/datasets/pymc-devs/open-clicks/resolve/main/data/part-0.parquet"
    url = (
        resolve.replace("http://", f"http://reader:{PASSWORD}@")
        if secret_in == "password"
        else f"{resolve}?X-Amz-Signature={SIGNATURE}"
    )
    source = dask_source(dd.read_parquet(url))
    assert len(DataLoader(source, batch_size=100)) == 2000
    hub.add_fault(path="*/part-0.parquet", action="status", status=404, times=None)
    record = Record()
    err = record.error(lambda: list(DataLoader(source, batch_size=100).iter_epoch(0)))
    assert isinstance(err, FileNotFoundError)
    assert "computing dask partition 0 of 1" in str(err)
    for text in record.texts:
        assert PASSWORD not in text and SIGNATURE not in text, text[:2000]

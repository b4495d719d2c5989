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
"""Mutation tests of ``pymc.variational.streaming``: realistic bugs the tests must catch.

Each mutant is one text patch of one module (an exact snippet and its replacement) and
the smallest selection of the default test suite that should fail on it. The repository
is copied to a temporary directory; each mutant is applied there, alone, and its tests
run in a subprocess whose ``sitecustomize`` maps ``pymc.variational.streaming`` to the
copy (processes the tests start inherit ``PYTHONPATH``, and forked producers the parent's
modules). The working tree is never touched.

Before the mutants, the script checks its own mechanism: the package and its submodules
import from the copy, in the subprocess and in a process that subprocess starts; a
deliberately broken copy fails the tests; and every selection passes on the unmutated
copy (the control run, skipped with ``--no-control``).

Usage::

    python tests/mutations.py               # every mutant, with the checks and the control
    python tests/mutations.py --list        # the mutants and the tests that should kill them
    python tests/mutations.py --only NAME   # one mutant (repeat, or separate with commas)

It exits with status 1 when a mutant survives, a patch no longer applies (the snippet is
not found exactly once: update the mutant after a refactor), a selection runs no test, or
the mechanism or the control fails. It is not collected by pytest (its name does not
start with ``test_`` and it lies outside ``testpaths``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path("pymc", "variational", "streaming")
TESTS = "tests/variational/streaming"
#: Seconds one selection may take before it counts as hung.
TIMEOUT = 900


@dataclass(frozen=True)
class Mutant:
    """A realistic bug: ``old`` replaced by ``new`` in ``module``; ``tests`` are
    ``(test file, -k expression)`` selections of the default suite that should fail."""

    name: str
    bug: str
    module: str
    old: str
    new: str
    tests: tuple[tuple[str, str], ...]


MUTANTS = [
    Mutant(
        "shards-same-order-every-epoch",
        "order.shard_permutation ignores the epoch: one shard order for every epoch",
        "order.py",
        "return np.random.default_rng([seed, epoch]).permutation(n)",
        "return np.random.default_rng(seed).permutation(n)",
        (("test_dataloader.py", "parquet_shards_are_permuted_anew_each_epoch"),),
    ),
    Mutant(
        "shards-never-permuted",
        "order.shard_permutation returns the identity: shards always in storage order",
        "order.py",
        "return np.random.default_rng([seed, epoch]).permutation(n)",
        "return np.arange(n)",
        (("test_dataloader.py", "parquet_shards_are_permuted_anew_each_epoch"),),
    ),
    Mutant(
        "window-order-same-every-epoch",
        "order.window_permutation ignores the epoch: each window reuses its permutation",
        "order.py",
        "return np.random.default_rng([seed, epoch, window]).permutation(n)",
        "return np.random.default_rng([seed, window]).permutation(n)",
        (("test_dataloader.py", "windows_are_permuted_anew_each_epoch"),),
    ),
    Mutant(
        "feed-after-step",
        "Trainer._loop writes the batch into the placeholder after calling the step",
        "trainer.py",
        """\
            feed(batch)
            if check_labels is not None:
                check_labels()
            step_fn, logs = cycle[(base + i + 1) % period]
            try:
                out = step_fn()
""",
        """\
            step_fn, logs = cycle[(base + i + 1) % period]
            try:
                out = step_fn()
                feed(batch)
                if check_labels is not None:
                    check_labels()
""",
        (("test_trainer.py", "placeholder_holds_data_before_the_first_step"),),
    ),
    Mutant(
        "short-batch-padded-to-batch-size",
        "windows._windows hands out whole batches only: the short last batch is padded "
        "with stale rows of the reused buffer, so total_size scales rows that are not data",
        "windows.py",
        "yield w * W + skip, buffer[skip:n], buffer",
        "yield w * W + skip, buffer[skip : -(-n // plan.batch_size) * plan.batch_size], buffer",
        (("test_trainer.py", "ragged_last_batch_is_fed_and_scaled"),),
    ),
    Mutant(
        "short-batch-loss-unscaled",
        "Trainer._loop records the loss of a short batch without rescaling it to a full one",
        "trainer.py",
        "losses[i] = out if rows == B else out * (B / rows)",
        "losses[i] = out",
        (("test_new_user.py", "short_batches_record_their_loss_on_the_scale_of_full_ones"),),
    ),
    Mutant(
        "early-stopping-direction-flipped",
        "EarlyStopping treats a higher held-out score (and a lower loss) as worse",
        "validation.py",
        'sign = 1.0 if self.monitor == "val_lpd" else -1.0',
        'sign = -1.0 if self.monitor == "val_lpd" else 1.0',
        (("test_validation.py", "early_stopping_counts_checks_without_improvement"),),
    ),
    Mutant(
        "early-stopping-tolerance-ignored",
        "EarlyStopping counts any improvement, however small",
        "validation.py",
        "sign * (value - self.best) > self.tolerance * abs(self.best)",
        "sign * (value - self.best) > 0",
        (("test_validation.py", "early_stopping_tolerance_is_relative"),),
    ),
    Mutant(
        "early-stopping-tolerance-absolute",
        "EarlyStopping's tolerance taken as absolute, not relative to the best value",
        "validation.py",
        "sign * (value - self.best) > self.tolerance * abs(self.best)",
        "sign * (value - self.best) > self.tolerance",
        (("test_validation.py", "early_stopping_tolerance_is_relative"),),
    ),
    Mutant(
        "held-out-mean-log-density",
        "HeldOutScore averages log p over the draws instead of taking log of the mean of p",
        "validation.py",
        "lpd = pt.logsumexp(draws, axis=0) - math.log(self.draws)",
        "lpd = pt.mean(draws, axis=0)",
        (("test_validation.py", "held_out_score_is_the_log_of_the_mean_predictive_density"),),
    ),
    Mutant(
        "held-out-plug-in",
        "HeldOutScore scores log p(y | theta) at the approximation's mean (a plug-in)",
        "validation.py",
        """\
            draws = approx.sample_node(row_logp, size=self.draws)  # (draws, *rows)
            lpd = pt.logsumexp(draws, axis=0) - math.log(self.draws)
""",
        """\
            lpd = approx.sample_node(row_logp, deterministic=True)
""",
        (("test_validation.py", "held_out_score_is_the_log_of_the_mean_predictive_density"),),
    ),
    Mutant(
        "retry-one-try-too-many",
        "RetryPolicy.should_retry compares attempt > tries: one retry more than asked",
        "retry.py",
        "if attempt >= self.tries or not is_transient(error):",
        "if attempt > self.tries or not is_transient(error):",
        (("test_remote.py", "retries_are_bounded"),),
    ),
    Mutant(
        "retry-one-try-too-few",
        "RetryPolicy.should_retry stops one try early",
        "retry.py",
        "if attempt >= self.tries or not is_transient(error):",
        "if attempt >= self.tries - 1 or not is_transient(error):",
        (("test_remote.py", "retries_are_bounded"),),
    ),
    Mutant(
        "checkpoint-without-optimizer-state",
        "the checkpoint holds the approximation's parameters only: no optimizer state, "
        "step count or random generators",
        "trainer.py",
        "return self.optimization.state_variables(self.feed.placeholders.values())",
        "return list(self.approx.params)",
        (("test_trainer.py", "checkpoint_resumes_bit_for_bit"),),
    ),
    Mutant(
        "resume-repeats-a-batch",
        "after an interrupted fit the stream resumes at the last batch used, not the next",
        "trainer.py",
        "stream.position if self._done_in_loop == self._fetched else stream.last_position",
        "stream.last_position",
        (("test_trainer.py", "interrupt_keeps_what_was_learned_and_continues"),),
    ),
    Mutant(
        "labels-checked-in-first-block-only",
        "blocks._check_block applies the label rules to the first block of each shard only",
        "blocks.py",
        "for j, rule in plan.rules.items():",
        "for j, rule in plan.rules.items() if first_row == 0 else ():",
        (("test_new_user.py", "label_beyond_the_first_read_block"),),
    ),
    Mutant(
        "checkpoint-on-other-data-accepted",
        "DataLoader.check_state_dict skips the fingerprint comparison",
        "dataloader.py",
        'difference = fingerprint_difference(state["fingerprint"], self.source.fingerprint())',
        'difference = ""',
        (("test_trainer.py", "checkpoint_on_other_data_is_refused"),),
    ),
    Mutant(
        "cache-key-ignores-fingerprint",
        "RowCache's key leaves out the source's fingerprint: a changed file reads stale rows",
        "cache.py",
        '            "fingerprint": source.fingerprint(),\n',
        "",
        (("test_cache.py", "stale_rows_are_never_read"),),
    ),
    Mutant(
        "worker-cleanup-not-awaited",
        "ProcessProducer.close returns before the stopped worker has closed its producers, "
        "whose partial cache file is still there",
        "prefetch.py",
        "        stopped = _wait_until_closed(self.ready, deadline)\n",
        "        stopped = True\n",
        (("test_cache.py", "closed_worker_has_removed_its_partial_file"),),
    ),
    Mutant(
        "worker-takes-source-errors-for-a-close",
        "The worker ends quietly on an OSError or EOFError of the source, as on a closed "
        "pipe: the consumer gets a bare EOFError",
        "prefetch.py",
        "    except _Closed:  # the producers were closed on the way out\n",
        "    except (_Closed, EOFError, OSError):\n",
        (
            ("test_dataloader.py", "source_error_reaches_the_consumer and process"),
            ("test_dataloader.py", "removed_after_the_loader_was_built and process"),
        ),
    ),
    Mutant(
        "averaging-disabled",
        "scheduled_adam's running average always takes the last iterate",
        "convergence.py",
        "weight = pt.switch(t <= after, 1.0, 1.0 / (t - after + 1.0))",
        "weight = pt.constant(1.0)",
        (("test_convergence.py", "the_default_fit_reaches_the_exact_optimum"),),
    ),
    Mutant(
        "averaging-starts-one-step-late",
        "scheduled_adam's average leaves out the iterate of step average_after",
        "convergence.py",
        "weight = pt.switch(t <= after, 1.0, 1.0 / (t - after + 1.0))",
        "weight = pt.switch(t <= after + 1.0, 1.0, 1.0 / (t - after))",
        (("test_convergence.py", "average_starts_with_the_iterate_of_step_average_after"),),
    ),
    Mutant(
        "control-variate-sign-flipped",
        "ControlVariateKL adds eps * grad log p(mean) to the scales' gradient instead of "
        "subtracting it",
        "convergence.py",
        "extra = extra + pt.sum(",
        "extra = extra - pt.sum(",
        (("test_convergence.py", "the_default_fit_reaches_the_exact_optimum"),),
    ),
    Mutant(
        "csv-rows-by-counting-lines",
        "csv_source counts rows as line breaks, so quoted line breaks count as rows",
        "csv.py",
        """\
            with self._open_reader(i, names, [first], fh=fh, types={first: pa.string()}) as reader:
                rows = sum(rb.num_rows for rb in _batches(reader, self.names[i], names))
            while fh.read(1 << 20):  # bytes the parser left unread still belong to the checksum
                pass
""",
        """\
            rows = -1 if self.header else 0
            while chunk := fh.read(1 << 20):
                rows += chunk.count(b"\\n")
""",
        (("test_sources.py", "csv_rows_with_quoted_line_breaks"),),
    ),
    Mutant(
        "redaction-disabled",
        "redaction.redact returns its text unchanged",
        "redaction.py",
        "    text = _URL.sub(lambda m: _redact_url(m.group(0)), str(text))\n",
        "    return str(text)\n",
        (("test_secrets.py", "no_secret_in_any_output_or_file"),),
    ),
    Mutant(
        "shutdown-hook-not-registered",
        "ThreadedIterator does not register its thread to be stopped at interpreter exit",
        "threads.py",
        "        track(self)  # stopped and joined before the interpreter finalizes\n",
        "",
        (("test_hub.py", "a_script_that_peeks_one_batch_exits_cleanly"),),
    ),
    Mutant(
        "revision-not-pinned",
        "files.pin_revisions returns the paths unchanged: a moving branch is read as it moves",
        "files.py",
        "    if not is_hub(fs):\n        return files, {}\n",
        "    return files, {}\n",
        (("test_hub.py", "a_branch_that_moves_during_a_fit_is_not_mixed_in"),),
    ),
    Mutant(
        "nan-rolls-back-parameters-only",
        "FiniteGuard watches the approximation's parameters only: Adam's moments, the "
        "averages and the global step keep their non-finite values after a rollback",
        "trainer.py",
        "self._guard.watch(self._state_variables(), self._steps_done, self._position)",
        "self._guard.watch(self.approx.params, self._steps_done, self._position)",
        (("test_trainer.py", "infinite_adam_moment_is_caught_and_rolled_back"),),
    ),
    Mutant(
        "held-out-draws-unseeded",
        "Validation calls the held-out score without a seed: its draws follow the "
        "generator's history, not (seed, step)",
        "validation.py",
        "value = self.held_out(seed=(self.seed, step))",
        "value = self.held_out()",
        (("test_validation.py", "held_out_scores_follow_the_seed"),),
    ),
    Mutant(
        "csv-columns-by-position",
        "csv_source reads every file with the first file's column order",
        "csv.py",
        "            self._file_names[i] = names\n",
        "            pass\n",
        (("test_new_user.py", "columns_in_another_order_are_read_by_name"),),
    ),
    Mutant(
        "cache-key-without-file-versions",
        "RowCache's key leaves out the files' modification stamps: a file rewritten with "
        "the same footer reads stale rows",
        "cache.py",
        '            "versions": getattr(source, "file_versions", lambda: None)(),\n',
        "",
        (("test_cache.py", "rewritten_with_the_same_footer"),),
    ),
    Mutant(
        "kept-stream-reused-anywhere",
        "TrainingStream.open reuses the kept stream wherever it stands: a fit from a "
        "checkpoint of another position reads the batches that follow the last fit",
        "streams.py",
        "        if kept is None or (kept.position, kept.seed, self._settings) != (position, seed, settings):\n",
        "        if kept is None or self._settings != settings:\n",
        (("test_trainer.py", "kept_between_fits"),),
    ),
    Mutant(
        "producer-always-kept",
        "Trainer.fit keeps its producer running after every fit, persistent_workers or not",
        "trainer.py",
        "            kept = self.dataloader.persistent_workers\n        except StopIteration",
        "            kept = True\n        except StopIteration",
        (("test_trainer.py", "no_producer_outlives"),),
    ),
    Mutant(
        "cache-written-after-an-in-place-transform",
        "blocks._shard_blocks writes the cache in the background also with a transform, "
        "which may change the block before it is written",
        "blocks.py",
        "    background = plan.transform is None\n",
        "    background = True\n",
        (("test_cache.py", "transform_that_changes_its_block"),),
    ),
    Mutant(
        "background-write-error-ignored",
        "RowFileWriter.finish completes a file whose background write failed",
        "rowfile.py",
        "        self._stop_background()\n        self._check_background()\n",
        "        self._stop_background()\n",
        (("test_cache.py", "disk_full_in_the_background"),),
    ),
    Mutant(
        "kept-stream-ignores-changed-settings",
        "TrainingStream.open compares position and seed only: a fit after the loader's "
        "transform was replaced reads with the old one",
        "streams.py",
        "        if kept is None or (kept.position, kept.seed, self._settings) != (position, seed, settings):\n",
        "        if kept is None or (kept.position, kept.seed) != (position, seed):\n",
        (("test_trainer.py", "changed_setting"),),
    ),
    Mutant(
        "worker-stopped-by-pipe-close-only",
        "ProcessProducer.close only closes its pipes: a worker whose pipe another fork holds "
        "is killed after 10 s",
        "prefetch.py",
        "            self.free.send(_STOP)\n",
        "            pass\n",
        (("test_dataloader.py", "fork_made_elsewhere"),),
    ),
    Mutant(
        "forked-child-closes-the-parents-worker",
        "ProcessProducer.close also runs in a child forked by other code (its exit, its "
        "garbage collection) and stops the parent's worker",
        "prefetch.py",
        "        if self.free.closed or os.getpid() != self.owner:\n",
        "        if self.free.closed:\n",
        (("test_dataloader.py", "forked_child_that_exits"),),
    ),
    Mutant(
        "worker-closed-before-threads-end",
        "The exit hook that closes workers runs from threading's exit hook, before non-daemon "
        "threads that still read from them have ended",
        "prefetch.py",
        "            atexit.register(_close_live_workers)\n",
        '            __import__("threading")._register_atexit(_close_live_workers)\n',
        (("test_dataloader.py", "outlives_the_main_thread"),),
    ),
    Mutant(
        "worker-sends-errors-that-do-not-unpickle",
        "The worker sends the source's error as it is: one whose __init__ takes other "
        "arguments fails to unpickle, and the consumer reports a TypeError instead",
        "prefetch.py",
        "        last = Failure(_portable(err))\n",
        "        last = Failure(err)\n",
        (("test_dataloader.py", "does_not_unpickle"),),
    ),
    Mutant(
        "exit-hook-registered-per-worker",
        "The exit hook is registered again whenever no producer is alive: it runs once per "
        "worker ever started",
        "prefetch.py",
        "        if not _hooked:\n",
        "        if not _LIVE:\n",
        (("test_dataloader.py", "exit_hook_is_registered_once"),),
    ),
    Mutant(
        "kept-worker-killed-at-exit",
        "No exit hook closes live workers: multiprocessing kills a worker in the middle of "
        "a cache file, which stays half-written",
        "prefetch.py",
        "            atexit.register(_close_live_workers)\n",
        "            pass\n",
        (("test_cache.py", "exits_without_closing"),),
    ),
    Mutant(
        "pandas-index-read-as-data",
        "ParquetSource streams the index pandas' to_parquet stores as a feature",
        "parquet.py",
        "names = [n for n in names if n not in _pandas_index(schema)]",
        "names = list(names)",
        (("test_new_user.py", "index_pandas_stores"),),
    ),
    Mutant(
        "hidden-directories-read",
        "_data_files skips only files named . or _, not those inside such directories",
        "files.py",
        'if any(part.startswith((".", "_")) for part in relative.split("/")):',
        'if os.path.basename(f).startswith((".", "_")):',
        (("test_new_user.py", "hidden_and_underscore"),),
    ),
    Mutant(
        "array-source-lends-the-users-array",
        "ArraySource hands out views: an in-place transform changes the user's array",
        "arrays.py",
        "yield np.array(self.array[a:b], dtype=dtype)",
        "yield self.array[a:b].astype(dtype, copy=False)",
        (("test_new_user.py", "transform_in_place"),),
    ),
    Mutant(
        "csv-column-names-keep-the-header",
        "csv_source with column_names and no header= skips the first line (a data row)",
        "csv.py",
        "self.header = column_names is None if header is None else bool(header)",
        "self.header = True if header is None else bool(header)",
        (("test_sources.py", "column_names_alone_mean_no_header"),),
    ),
    Mutant(
        "csv-unclosed-quote-unchecked",
        "CSVSource does not check a file whose last quote never closes",
        "csv.py",
        "self._check_last_row(i, rows)",
        "pass",
        (("test_new_user.py", "quote_that_never_closes"),),
    ),
    Mutant(
        "group-index-unchecked",
        "Feed.label_rules leaves out the columns that index a variable",
        "feeds.py",
        "traced.setdefault(column, rule)",
        "pass",
        (("test_new_user.py", "group_code_outside"),),
    ),
    Mutant(
        "mixture-support-unknown",
        "support_of knows no zero-inflated or hurdle likelihood (a negative count: NaN loss)",
        "likelihoods.py",
        "if isinstance(op, _BaseMixtureRV):",
        "if False:",
        (("test_new_user.py", "outside_the_support"),),
    ),
    Mutant(
        "int-placeholder-rule-replaces-support",
        "DataLoader.plan keeps an int placeholder's whole-number rule over a likelihood's",
        "dataloader.py",
        "rules[j] = dataclasses.replace(rule, feeds=rule.feeds + through)",
        "rules.setdefault(j, rule)",
        (("test_new_user.py", "int_label_field_keeps"),),
    ),
    Mutant(
        "predict-fields-by-position",
        "PlaceholderFiller does not reorder a field whose columns come in another order",
        "matching.py",
        "self.order[f] = np.array([have.index(c) for c in want])",
        "pass",
        (("test_predict.py", "field_columns_are_matched_by_name"),),
    ),
    Mutant(
        "predict-codes-by-position",
        "PlaceholderFiller does not compare the categorical levels of the two loaders",
        "matching.py",
        "        _check_levels(train, loader, self.read, loader_name, levels_from)\n",
        "",
        (("test_predict.py", "group_codes_are_matched_by_level_not_by_position"),),
    ),
    Mutant(
        "one-column-field-is-a-view",
        "Fields.split hands out a view of a one-column window (np.ascontiguousarray)",
        "fields.py",
        'out[field] = np.array(part, dtype=dtypes[field], order="C")',
        "out[field] = np.ascontiguousarray(part, dtype=dtypes[field])",
        (("test_dataloader.py", "kept_field_batches_keep_their_rows"),),
    ),
    Mutant(
        "state-dict-forgets-the-live-iterator",
        "DataLoader.state_dict ignores an iterator part-way through its epoch",
        "dataloader.py",
        "            epoch, batch = iterator.position\n",
        "            pass\n",
        (("test_dataloader.py", "state_taken_mid_epoch_goes_on_with_that_epoch"),),
    ),
    Mutant(
        "checkpoint-of-another-model-loads",
        "Trainer.load_checkpoint does not compare the saved model and transform",
        "trainer.py",
        "check_identity(path, meta, self.model, self.dataloader.transform)",
        "pass",
        (("test_checkpoint_identity.py", "refused or transform"),),
    ),
]

SITECUSTOMIZE = '''\
"""Written by tests/mutations.py: import pymc.variational.streaming from {root!r}."""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_NAME = "pymc.variational.streaming"
_ROOT = {root!r}


class _MutantFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == _NAME:
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(_ROOT, "__init__.py"), submodule_search_locations=[_ROOT]
            )
        if fullname.startswith(_NAME + "."):
            return importlib.machinery.PathFinder.find_spec(fullname, [_ROOT])
        return None


sys.meta_path.insert(0, _MutantFinder())
'''

# Run in the subprocess, and again in a process that it starts: where the package is.
WHERE = (
    "import subprocess, sys; import pymc.variational.streaming as s; "
    "import pymc.variational.streaming.order as o; print(s.__file__); print(o.__file__); "
    "print(subprocess.run([sys.executable, '-c', 'import pymc.variational.streaming.trainer as t; "
    "print(t.__file__)'], capture_output=True, text=True, check=True).stdout.strip())"
)


class Workspace:
    """A copy of the repository in a temporary directory, and the environment that makes
    Python import the package from it."""

    def __init__(self, keep: bool = False):
        self.tmp = Path(tempfile.mkdtemp(prefix="pymc-mutations-"))
        self.keep = keep
        self.root = self.tmp / REPO.name
        shutil.copytree(
            REPO,
            self.root,
            ignore=shutil.ignore_patterns(
                ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "_build"
            ),
        )
        shared = REPO.parent / "shared"  # the real Criteo sample lies beside the repository
        if shared.exists():
            (self.tmp / "shared").symlink_to(shared)
        self.package = self.root / PACKAGE
        hook = self.tmp / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SITECUSTOMIZE.format(root=str(self.package)))
        path = os.environ.get("PYTHONPATH")
        self.env = {
            **os.environ,
            "PYTHONPATH": str(hook) + (os.pathsep + path if path else ""),
            "PYTHONDONTWRITEBYTECODE": "1",  # no stale bytecode of a mutated module
        }

    def close(self) -> None:
        if self.keep:
            print(f"workspace kept at {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def python(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pytest(self, selection: tuple[str, str]) -> Result:
        """Run one ``(test file, -k expression)`` selection of the copy's tests."""
        test_file, expression = selection
        args = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--no-header"]
        args += [f"{TESTS}/{test_file}", "-k", expression]
        start = time.monotonic()
        try:
            run = self.python(*args)
        except subprocess.TimeoutExpired:
            return Result(selection, None, [], time.monotonic() - start, "timed out", "")
        output = run.stdout + run.stderr
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
        summary = [line for line in output.splitlines() if re.match(r"^=*\s*\d+ \w+.* in ", line)]
        return Result(
            selection,
            run.returncode,
            failed,
            time.monotonic() - start,
            summary[-1].strip("= ") if summary else "",
            output,
        )


@dataclass
class Result:
    selection: tuple[str, str]
    returncode: int | None  # None: timed out
    failed: list[str]
    seconds: float
    summary: str
    output: str

    @property
    def label(self) -> str:
        return f"{self.selection[0]} -k {self.selection[1]!r}"


def patch(text: str, mutant: Mutant) -> str | None:
    """The module's text with the mutant applied; None when the snippet is not there once."""
    if text.count(mutant.old) != 1:
        return None
    return text.replace(mutant.old, mutant.new)


def check_mechanism(ws: Workspace) -> list[str]:
    """Problems with the way mutants reach the tests (empty when all is well)."""
    problems = []
    run = ws.python("-c", WHERE, timeout=300)
    paths = run.stdout.split()
    if run.returncode != 0 or len(paths) != 3:
        problems.append(f"importing the package from the copy failed:\n{run.stderr[-2000:]}")
    else:
        for path in paths:
            if not Path(path).is_relative_to(ws.package):
                problems.append(f"a module was imported from {path}, not from the copy")
    # A copy broken on purpose must fail the tests, with the copy's own error.
    init = ws.package / "__init__.py"
    original = init.read_text()
    init.write_text('raise ImportError("copy broken on purpose by mutations.py")\n' + original)
    try:
        broken = ws.pytest(MUTANTS[0].tests[0])
    finally:
        init.write_text(original)
    if broken.returncode == 0 or "copy broken on purpose" not in broken.output:
        problems.append(
            f"a deliberately broken copy did not fail {broken.label} (exit {broken.returncode})"
        )
    return problems


def run_mutant(ws: Workspace, mutant: Mutant) -> tuple[str, str, list[Result]]:
    """``(status, why, results)``; status is killed, SURVIVED, NOT APPLIED or ERROR."""
    path = ws.package / mutant.module
    original = path.read_text()
    mutated = patch(original, mutant)
    if mutated is None:
        why = (
            f"the patch no longer applies: its snippet occurs {original.count(mutant.old)} "
            f"times in {mutant.module}, not once; update the mutant in tests/mutations.py"
        )
        return "NOT APPLIED", why, []
    try:
        compile(mutated, str(path), "exec")
    except SyntaxError as err:
        return "ERROR", f"the patched module does not compile: {err}", []
    path.write_text(mutated)
    results = []
    try:
        for selection in mutant.tests:
            result = ws.pytest(selection)
            results.append(result)
            if result.returncode is None:
                return "killed", f"timed out after {TIMEOUT} s", results
            if result.returncode == 1:
                return "killed", "", results
            if result.returncode == 5:
                return "ERROR", "the selection runs no test", results
            if result.returncode != 0:
                return "ERROR", f"pytest exited with {result.returncode}", results
    finally:
        path.write_text(original)
    return "SURVIVED", "every selected test passed", results


def describe() -> str:
    lines = []
    for m in MUTANTS:
        lines.append(f"{m.name}  ({m.module})\n    {m.bug}")
        lines += [f"    killed by: {TESTS}/{f} -k {k!r}" for f, k in m.tests]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    parser.add_argument("--no-control", action="store_true", help="skip the unmutated run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    if args.list:
        print(describe())
        return 0
    names = [n for value in args.only for n in value.split(",") if n]
    unknown = sorted(set(names) - {m.name for m in MUTANTS})
    if unknown:
        parser.error(f"unknown mutant(s) {unknown}; --list shows them")
    mutants = [m for m in MUTANTS if not names or m.name in names]

    start = time.monotonic()
    ws = Workspace(keep=args.keep)
    failures = 0
    try:
        print(f"copy of {REPO} at {ws.root}")
        problems = check_mechanism(ws)
        for problem in problems:
            print(f"MECHANISM: {problem}")
        if problems:
            return 1
        print("mechanism: the package and its subprocesses import the copy; a broken copy fails")
        if not args.no_control:
            selections = list(dict.fromkeys(s for m in mutants for s in m.tests))
            for result in map(ws.pytest, selections):
                ok = result.returncode == 0
                failures += not ok
                print(
                    f"control {'ok  ' if ok else 'FAIL'} {result.seconds:4.0f}s  {result.label}: "
                    f"{result.summary or result.returncode}"
                )
                if not ok:
                    print(textwrap.indent(result.output[-3000:], "    "))
        print()
        for mutant in mutants:
            status, why, results = run_mutant(ws, mutant)
            seconds = sum(r.seconds for r in results)
            print(f"{status:<11} {seconds:4.0f}s  {mutant.name}: {mutant.bug}")
            if why:
                print(f"{'':18}{why}")
            for result in results:
                what = ", ".join(t.rsplit("::", 1)[-1] for t in result.failed) or result.summary
                print(f"{'':18}{result.label}: {what}")
            if status == "killed":
                continue
            failures += 1
            for result in results:
                if result.returncode not in (0, 1):
                    print(textwrap.indent(result.output[-3000:], "    "))
    finally:
        ws.close()
    print(
        f"\n{len(mutants)} mutants, {failures} problem(s), "
        f"{(time.monotonic() - start) / 60:.1f} minutes"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

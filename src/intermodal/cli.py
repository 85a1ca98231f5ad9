"""intermodal: train multimodal VAEs under KL-weight schedules and measure how they integrate their modalities.

Every option of :class:`intermodal.training.config.RunConfig` is a flag (``--batch-size``,
``--eval-every``, ...); ``--config FILE`` supplies a file of them, and flags given on the
command line win over the file. The commands are a thin layer over the library (``import
intermodal as im``): each parses its flags, calls the library and prints what it returns.

Exit statuses: 0 done; 2 a user's error (an :class:`~intermodal.errors.IntermodalError`, or
a file the system cannot read or write), one line naming the file, option or key; 3 the run
finished but some models diverged (named on stderr); 130 interrupted (Ctrl-C); 143 stopped
by SIGTERM (during training, after saving a checkpoint; at any other moment of a command,
once what it was writing is removed or whole); 1 a bug (its traceback, and a line asking to
report it).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from .errors import ConfigError, IntermodalError, Terminated
from .evaluation import catalogue
from .training.config import PRESET_SUMMARIES, STUDY_PRESETS, RunConfig, load_config_file, preset_config

# Flags whose name differs from the config field, or that take a special form.
_RENAMED = {"schedules": "schedule", "fusions": "fusion", "likelihoods": "likelihood"}
# Flags that may be given bare, and the value they then take.
_BARE = {"shares": "modalities"}
_HELP = {
    "data": "data set: 'sim' (embedded simulator, default), 'icub' (fetched and cached), 'digits' (scikit-learn's "
    "handwritten digits, offline), or a description file",
    "data_dir": "read the data files from this folder instead of fetching them",
    "sim": 'simulator options as JSON, e.g. \'{"seed": 3, "n_train": 1000}\' (see --data sim)',
    "patterns": "muting patterns to train on, comma-separated (default: all of the data set's)",
    "muting": "how training rows are muted: patterns (the data set's muting patterns, Zambelli's) or subsets "
    "(random non-empty proper subsets of the modalities, every vertex of the lattice taught; docs/method.md §1)",
    "schedules": "KL-weight schedules, comma-separated: constant-1, constant-0, dynamic-plateau-0, "
    "dynamic-plateau-1, constant:beta=B, linear:warmup=E, cyclical:cycles=M:ratio=R, table:FILE.csv",
    "seeds": "a number of seeds (5 = seeds 0-4), a list (0,3,7) or a range (10-19)",
    "likelihoods": "each named modality's output family for this run, e.g. touch=bernoulli,sound=bernoulli "
    "(gaussian, laplace, bernoulli, categorical; others keep their description's)",
    "architecture": "architecture preset 1..7 of the original code, or a .json file of layer widths",
    "epochs": "epochs to train",
    "schedule_horizon": "epochs the schedules are laid over (default: --epochs; 80000 = the paper's constants "
    "unscaled)",
    "lr": "Adam learning rate",
    "batch_size": "rows per batch",
    "dtype": "float32 or float64",
    "device": "cpu, cuda or cuda:N (with --resume: go on on this device)",
    "threads": "torch threads per worker (none = torch's choice)",
    "workers": "parallel shards of models, one core each (none = one per core)",
    "eval_every": "evaluate the measures every this many epochs (0 = never)",
    "eval_rows": "evaluation rows of the test part: first, random or all",
    "n_eval_rows": "number of evaluation rows (first/random)",
    "eval_seed": "seed of the random evaluation rows",
    "extra_pairs": 'extra measures as JSON: {"name": {"muted": [selectors], "compared": [selectors]}}',
    "ground_truth": "true: on --data digits, measure what its checks need; on --data sim, add the distractors "
    "(noise, copy-vision; unless --sim names "
    "distractors) and the measures the report's ground-truth checks need",
    "ground_truth_controls": "true (with --data sim and --ground-truth true): a study first trains the ground-truth "
    "controls, concat models of the xor triple alone and of vision with its copy (about a minute each), and its "
    "report checks the lattice's synergy and redundancy on them",
    "shares": "the lattice measures at the evaluations (Shapley shares of the baseline, who informs whom, "
    "interactions; docs/method.md §5d): --shares alone or 'modalities' takes the modalities as parts, 'steps' each "
    "modality@step",
    "shares_every": "epochs between the evaluations that add the shares (a multiple of --eval-every; 0 = the last)",
    "windows": "epoch windows for the window means, as JSON [[start, end], ...]",
    "checkpoint_every": "epochs between checkpoints",
}


def _fusion_help() -> dict[str, str]:
    """The help of the options that list fusions, from the registry as it is now (a fusion
    registered after import is listed)."""
    from .model.fusions import FUSIONS

    def names(fusions) -> str:
        fusions = list(fusions)
        return ", ".join(fusions[:-1]) + " and " + fusions[-1] if len(fusions) > 1 else "".join(fusions)

    by_samples: dict[int, list[str]] = {}
    for name, cls in FUSIONS.items():
        by_samples.setdefault(cls.default_z_samples, []).append(name)
    mixtures = [name for name, cls in FUSIONS.items() if cls.mixture_posterior]
    return {
        "fusions": "how the encoder fuses the modalities, comma-separated: "
        + ", ".join(f"{name} ({cls.summary})" if cls.summary else name for name, cls in FUSIONS.items()),
        "z_samples": "decode from this many samples of z (0 = from the posterior's mean; none = per fusion: "
        + ", ".join(f"{n} for {names(fs)}" for n, fs in by_samples.items())
        + ")",
        "divergence": "with z samples: per-sample (mean of the samples' closed forms) or predictive (between the "
        "predictive mixtures); none = "
        + (f"predictive for {names(mixtures)}, per-sample otherwise" if mixtures else "per-sample"),
    }


def _add_config_options(parser: argparse.ArgumentParser, defaults: RunConfig, label: str = "default") -> None:
    group = parser.add_argument_group("run options (also keys of --config)")
    helps = {**_HELP, **_fusion_help()}
    for name, field in RunConfig.model_fields.items():
        flag = "--" + _RENAMED.get(name, name).replace("_", "-")
        default = getattr(defaults, name)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        bare: dict[str, Any] = {"nargs": "?", "const": _BARE[name]} if name in _BARE else {}
        group.add_argument(
            flag,
            dest=name,
            default=None,
            **bare,
            metavar=_metavar(field.annotation),
            help=f"{helps.get(name, '')} ({label}: {shown})",
        )
    parser.add_argument("--config", help="a TOML or JSON file of run options")


def _metavar(hint) -> str:
    text = str(hint)
    return "N" if "int" in text and "list" not in text else "X"


def _resolve_config(args, base: RunConfig) -> RunConfig:
    config = base
    if args.config:
        config = config.updated(load_config_file(args.config), origin=args.config)
    given = {name: getattr(args, name) for name in RunConfig.model_fields if getattr(args, name) is not None}
    config = config.updated(RunConfig.from_strings(given, origin="command line"), origin="command line")
    return config.with_absolute_paths()


def _refuse_options_with_resume(args) -> str | None:
    """The options a resumed run takes: only ``--device`` (it moves the run; the numbers
    stay those of the run's config). Returns the device asked for, if any."""
    given = [name for name in RunConfig.model_fields if getattr(args, name) is not None and name != "device"]
    if given or args.config:
        flags = ", ".join("--" + _RENAMED.get(n, n).replace("_", "-") for n in given) or "--config"
        raise ConfigError(f"--resume continues a run as its config.json says (--device may move it); drop {flags}")
    if args.device is not None:
        RunConfig().updated({"device": args.device}, origin="command line")  # checked as a run's would be
    return args.device


EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _finished(result) -> int:
    lines = result.divergence_lines()
    for line in lines:
        print(f"intermodal: {line}", file=sys.stderr)
    return EXIT_DIVERGED if lines else 0


# ---------------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from .study import runs

    if args.resume:
        device = _refuse_options_with_resume(args)
        result = runs.resume(args.resume, progress=not args.quiet, report=False, track=args.track, device=device)
    else:
        config = _resolve_config(args, RunConfig())
        result = runs.train(
            config, out=args.out, evaluate=bool(config.eval_every), progress=not args.quiet, track=args.track
        )
    print(f"trained {len(result.model_keys)} models for {result.epochs_done} epochs; wrote {result.out}")
    return _finished(result)


def cmd_study(args) -> int:
    from .study import runs
    from .training.runfolder import report_path

    # Backend options change no result, so they are not part of the run's config.
    if args.address and args.backend != "ray":
        raise ConfigError("--address names a Ray cluster; it goes with --backend ray")
    if args.resume:
        device = _refuse_options_with_resume(args)
        result = runs.resume(
            args.resume,
            backend=args.backend,
            address=args.address,
            progress=not args.quiet,
            track=args.track,
            device=device,
        )
    else:
        config = _resolve_config(args, preset_config(args.preset))
        out = args.out or f"runs/study-{args.preset}"
        result = runs.run_study(
            config, out, backend=args.backend, address=args.address, progress=not args.quiet, track=args.track
        )
    assert result.out is not None  # the command line always writes a run folder
    print(f"report: {report_path(result.out)}")
    return _finished(result)


def cmd_measure(args) -> int:
    from .evaluation.evaluator import measure_run

    table = measure_run(
        args.run,
        data_dir=args.data_dir,
        eval_rows=args.eval_rows,
        n_eval_rows=args.n_eval_rows,
        z_samples=args.z_samples,
        divergence=args.divergence,
        fusion=args.fusion,
        schedule=args.schedule,
        seed=args.seed,
        shares=args.shares,
    )
    if args.json:
        print(table.to_json(orient="records", indent=1))
    else:
        import pandas as pd

        lattice = table[table["quantity"].isin([catalogue.SHARE, catalogue.INTERACTION])]
        table = table[~table.index.isin(lattice.index)]
        wide = table.pivot_table(
            index=["fusion", "schedule", "seed", "modality"], columns=["quantity", "scope"], values="value", sort=False
        )
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
            print(wide.round(4).to_string())
            summary = _seed_summary(table)
            if summary is not None:
                print("\nover seeds: mean, sd, 95% interval of the mean [low, high] (Student's t), seeds")
                print(summary.to_string())
            if len(lattice):
                _print_lattice(lattice)
    return 0


def _print_lattice(lattice) -> None:
    """The shares (a source per row, a target per column: who informs whom; the column
    ``all`` the shares of the whole baseline) and the interactions regarding all, then
    their summaries over seeds."""
    keys = ["fusion", "schedule", "seed"]
    shares = lattice[lattice["quantity"] == catalogue.SHARE]
    print(
        "\nshares of the baseline (nats): source part per row, target per column; each column adds up to its baseline"
    )
    print(
        shares.pivot_table(index=[*keys, "modality"], columns="scope", values="value", sort=False).round(4).to_string()
    )
    pairs = lattice[(lattice["quantity"] == catalogue.INTERACTION) & (lattice["scope"] == "all")]
    print("\ninteractions regarding all (nats): > 0 synergy, < 0 redundancy")
    print(pairs.pivot_table(index=keys, columns="modality", values="value", sort=False).round(4).T.to_string())
    summary = _seed_summary(lattice[lattice["scope"] == "all"])
    if summary is not None:
        print("\nover seeds, regarding all: mean, sd, 95% interval of the mean [low, high] (Student's t), seeds")
        print(summary.to_string())


def _seed_summary(table):
    """The per-model measures summarised over seeds per fusion, schedule, quantity, modality
    and scope: mean, sd, the 95% interval of the mean and the seeds (None when no condition
    has two seeds)."""
    from .evaluation.statistics import summarise

    stats = summarise(table, ["fusion", "schedule", "quantity", "modality", "scope"], "value")
    if not (stats["n_seeds"] >= 2).any():
        return None
    return stats.set_index(["fusion", "schedule", "quantity", "modality", "scope"]).map(
        lambda v: f"{v:.4g}" if isinstance(v, float) else v
    )


def cmd_predict(args) -> int:
    import pandas as pd

    from .outputs.prediction import predict_run, prediction_errors, prediction_summary
    from .training.runfolder import PREDICTION_ERRORS, read_config, save_tables, write_table_file, writing

    if args.tests:
        if args.given or args.rows != "test" or args.steps != 1 or args.sample_seed is not None:
            raise ConfigError(
                "--tests runs the prediction tests on the run's test rows; drop --given, --rows, "
                "--steps and --sample-seed"
            )
        with writing(args.run, new=False):
            errors = prediction_errors(args.run, train_baselines=True, progress=not args.quiet)
            save_tables(args.run, tables={PREDICTION_ERRORS.removesuffix(".parquet"): errors})
            if args.out:
                write_table_file(args.out, errors)
        config = read_config(args.run)
        summary = prediction_summary(errors, list(config.schedules))
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500):
            print(summary.to_string(index=False))
        print(f"table: {Path(args.run) / PREDICTION_ERRORS}; the report shows it after `intermodal report {args.run}`")
        return 0
    if not args.given:
        raise ConfigError(
            "predict: name what the models are given (--given vision, --given joints@t-1,vision) "
            "or run the prediction tests (--tests)"
        )
    given = [s.strip() for s in args.given.split(",") if s.strip()]
    table = predict_run(
        args.run,
        given,
        rows=args.rows,
        fusion=args.fusion,
        schedule=args.schedule,
        seed=args.seed,
        steps=args.steps,
        sample_seed=args.sample_seed,
    )
    if args.out:
        print(f"wrote {len(table)} rows to {write_table_file(args.out, table)}")
    else:
        with pd.option_context("display.width", 200, "display.max_rows", 60):
            print(table.to_string(index=False, max_rows=60))
    return 0


def cmd_report(args) -> int:
    from .outputs.report import write_report
    from .training.runfolder import writing

    with writing(args.run, new=False):
        path = write_report(Path(args.run), redraw=True)
    print(f"report: {path}")
    return 0


def cmd_compare(args) -> int:
    import pandas as pd

    from .outputs.compare import compare

    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    result = compare(args.runs, args.out, labels=labels)
    assert result.page is not None  # --out always names the page (default compare.html)
    for note in result.notes:
        print(f"note: {note}")
    if len(result.findings):
        states = result.findings.pivot_table(
            index=["fusion", "id"], columns="run", values="state", aggfunc="first", sort=False
        ).reindex(columns=result.labels)
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(states.fillna("not checked").to_string())
    print(f"page: {result.page}")
    print(f"table: {result.page.with_suffix('.parquet')}")
    return 0


def cmd_data_sim(args) -> int:
    from .data.catalog import write_dataset
    from .data.sim import simulate

    try:
        options = json.loads(args.options) if args.options else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--options: not valid JSON ({e})") from None
    if not isinstance(options, dict):
        raise ConfigError("--options: expected a JSON object of simulator options")
    if args.seed is not None:
        options["seed"] = args.seed
    dataset = simulate(**options)
    path = write_dataset(dataset, args.out)
    print(f"wrote {len(dataset.train)} training and {len(dataset.test)} test rows; description: {path}")
    return 0


def cmd_data_fetch(args) -> int:
    from .data.catalog import fetch_icub

    print(f"iCub files in {fetch_icub()}")
    return 0


def _add_track(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--track",
        metavar="TRACKER",
        help="watch the run live: tensorboard[:DIR] or mlflow[:URI] (default stores in RUN/tracking; needs "
        "pip install 'intermodal[tensorboard]' or 'intermodal[mlflow]')",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="intermodal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train models under KL-weight schedules")
    _add_config_options(p, RunConfig())
    p.add_argument("--out", default="runs/train", help="run folder to write (default: runs/train)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    _add_track(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("study", help="train, measure every K epochs, draw the figures and write the report")
    p.add_argument(
        "--preset",
        choices=list(STUDY_PRESETS),
        default="quick",
        help="; ".join(f"{name}: {what}" for name, what in PRESET_SUMMARIES.items()),
    )
    _add_config_options(p, preset_config("quick"), label="quick preset")
    p.add_argument("--out", help="run folder (default: runs/study-PRESET)")
    p.add_argument("--resume", metavar="RUN", help="continue the study in this folder")
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="local: this machine (default); ray: units of models as Ray tasks on a cluster "
        "(docs/cluster.md; needs pip install 'intermodal[ray]')",
    )
    p.add_argument("--address", help="the Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    _add_track(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("measure", help="print the integration measures of a trained checkpoint")
    p.add_argument("run", metavar="RUN", help="a run folder (or one of its checkpoint folders)")
    p.add_argument("--data-dir", help="where the data files lie (default: as the run was trained)")
    p.add_argument("--eval-rows", choices=["first", "random", "all"], default=None)
    p.add_argument("--n-eval-rows", type=int, default=None)
    p.add_argument("--z-samples", type=int, default=None)
    p.add_argument("--divergence", choices=["per-sample", "predictive"], default=None)
    p.add_argument("--fusion", help="only the models of this fusion")
    p.add_argument("--schedule", help="only the models of this schedule")
    p.add_argument("--seed", type=int, help="only the models of this seed")
    p.add_argument(
        "--shares",
        nargs="?",
        const="modalities",
        choices=["modalities", "steps"],
        default=None,
        help="add the lattice measures: Shapley shares of the baseline, who informs whom, interactions "
        "(parts: the modalities, or each modality@step with 'steps'; docs/method.md §5d)",
    )
    p.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("predict", help="predict with trained models from partial information (docs/prediction.md)")
    p.add_argument("run", help="a run folder with a checkpoint")
    p.add_argument(
        "--given",
        help="what the models are given, comma-separated selectors: vision, joints@t-1, "
        "'*@t-1' (every modality at t-1)",
    )
    p.add_argument(
        "--rows",
        default="test",
        help="'test' (the run's test rows, default) or a CSV file whose columns are named as the data set's",
    )
    p.add_argument("--fusion", help="only the models of this fusion")
    p.add_argument("--schedule", help="only the models of this schedule")
    p.add_argument("--seed", type=int, help="only the models of this seed")
    p.add_argument(
        "--steps",
        type=int,
        default=1,
        help="chain the prediction this many steps (the prediction at t becomes the input at t-1 of the next)",
    )
    p.add_argument(
        "--sample-seed", type=int, help="decode one sample of z drawn with this seed (default: the latent mean)"
    )
    p.add_argument(
        "--tests",
        action="store_true",
        help="run the original work's prediction tests beside the "
        "baselines (trained and kept in RUN/baselines the first time)",
    )
    p.add_argument("--out", help="write the table to this .csv or .parquet file")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("report", help="rebuild the figures and report.html of a run folder")
    p.add_argument("run")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="put several run folders side by side: one page, one table, figures")
    p.add_argument("runs", nargs="+", metavar="RUN", help="two or more run folders")
    p.add_argument("--out", default="compare.html", help="the page to write (default: compare.html)")
    p.add_argument("--labels", help="a name per run, comma-separated (default: the folders' names)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("data", help="data set tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("sim", help="write the simulated data set as train.csv, test.csv and description.json")
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int)
    q.add_argument("--options", help="simulator options as JSON (see docs/simulator.md)")
    q.set_defaults(func=cmd_data_sim)
    q = data_sub.add_parser("fetch", help="download and check the iCub files into the cache")
    q.set_defaults(func=cmd_data_fetch)
    return parser


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.WARNING


def _log_handlers() -> list[logging.Handler]:
    """The library's log lines on the terminal: information on stdout as it is, warnings
    on stderr as ``intermodal: warning: ...``."""
    info = logging.StreamHandler(sys.stdout)
    info.setLevel(logging.INFO)
    info.addFilter(_BelowWarning())
    warning = logging.StreamHandler(sys.stderr)
    warning.setLevel(logging.WARNING)
    warning.setFormatter(logging.Formatter("intermodal: warning: %(message)s"))
    return [info, warning]


class _Stopped(Terminated):
    """SIGTERM outside the training loop (which handles its own: it saves a checkpoint)."""


def _stop_on_sigterm():
    """For the whole command, SIGTERM raises :class:`_Stopped` where the process is, so that
    the run folder's lock is released through its context, a new run's partial folder is
    removed and a temporary file is unlinked, as on any error; training (and a cluster
    study's driver) install their own handler for their stretch and restore this one.
    Returns the handler replaced (None off the main thread, where none can be installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise _Stopped("stopped by SIGTERM")

    return signal.signal(signal.SIGTERM, stop)


def _bug() -> int:
    traceback.print_exc()
    print(
        "intermodal: this is a bug in intermodal, not a problem with your input; please report it to the "
        "intermodal developers with the traceback above and the command you ran",
        file=sys.stderr,
    )
    return EXIT_BUG


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logger = logging.getLogger("intermodal")
    handlers, level = _log_handlers(), logger.level
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # A crash in native code (a segfault) still prints where Python was, for a bug report.
    had_faulthandler = faulthandler.is_enabled()
    if not had_faulthandler:
        try:
            faulthandler.enable()
        except (AttributeError, ValueError, OSError):  # a stderr without a file (captured)
            had_faulthandler = True
    previous_sigterm = None
    try:
        previous_sigterm = _stop_on_sigterm()
        return args.func(args)
    except IntermodalError as e:
        print(f"intermodal: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:
        if not e.filename:  # no file to name: not the user's input
            return _bug()
        print(f"intermodal: error: {e.filename}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except _Stopped as e:
        print(
            f"intermodal: {e} before {args.command} finished; no file is left half-written (a new run's folder "
            "without a checkpoint is removed); run the command again, or continue a run that has a checkpoint "
            "with --resume",
            file=sys.stderr,
        )
        return EXIT_TERMINATED
    except Terminated as e:
        how = "intermodal study --resume" if args.command == "study" else "intermodal train --resume"
        where = f" {e.run}" if e.run is not None else " RUN"
        print(f"intermodal: {e}; continue with {how}{where}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("intermodal: interrupted; continue with --resume RUN", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        # Anything else is a bug, whatever its type (a ValueError from inside NumPy too).
        return _bug()
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(level)
        if not had_faulthandler:
            faulthandler.disable()


if __name__ == "__main__":
    sys.exit(main())

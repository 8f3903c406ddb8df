"""The ``fastrec`` command: evaluate models, recommend for a user, find similar items,
print the configuration.

A bad path, id or option gives one line on stderr and exit status 2 (set
``FASTREC_DEBUG=1`` to see the traceback instead).
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

EXIT_USAGE = 2

# name -> (factory, one-line description); later models add themselves here
MODELS = {
    "popularity": (lambda: _models().Popularity(), "most interacted-with items"),
    "popularity-mean": (lambda: _models().Popularity(mode="mean"), "damped mean rating"),
    "baseline": (lambda: _models().Baseline(), "global mean + user/item biases (ALS)"),
    "baseline-sgd": (lambda: _models().Baseline(method="sgd"), "biases trained by SGD"),
    "item-knn": (lambda: _models().ItemKNN(center="baseline", metric="pearson_baseline"),
                 "item-based kNN (Surprise's KNNBaseline, pearson_baseline)"),
    "user-knn": (lambda: _models().UserKNN(center="mean", metric="pearson"),
                 "user-based kNN (Surprise's KNNWithMeans, pearson)"),
    "mf": (lambda: _models().MatrixFactorization(random_state=0),
           "matrix factorisation by SGD (Surprise's SVD)"),
    "ncf": (lambda: _models().NeuralCF(loss="mse", lr=0.005, reg=0.01, random_state=0),
            "neural collaborative filtering (NeuMF) on ratings"),  # unregularised, it overfits ratings
}
SIZES = {  # synthetic dataset sizes: users, items, ratings
    "small": (2_000, 1_000, 60_000),
    "medium": (10_000, 4_000, 500_000),
    "large": (50_000, 20_000, 5_000_000),
}
BENCH_CASES = ("topk", "similarity", "knn", "mf", "recommend", "metrics", "ncf")  # fastrec.bench.CASES, kept import-free
COLUMNS = [  # (result key, header, format)
    ("rmse", "RMSE", "{:.4f}"), ("mae", "MAE", "{:.4f}"),
    ("precision@{k}", "P@{k}", "{:.4f}"), ("recall@{k}", "R@{k}", "{:.4f}"),
    ("ndcg@{k}", "NDCG@{k}", "{:.4f}"), ("coverage", "coverage", "{:.3f}"),
    ("fit_seconds", "fit s", "{:.3f}"), ("predict_seconds", "predict s", "{:.3f}"),
    ("recommend_seconds", "top-N s", "{:.3f}"),
]


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit 2."""


def _models():
    import fastrec

    return fastrec


def build_parser():
    parser = argparse.ArgumentParser(prog="fastrec", description="A fast recommender-system backend.")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="fit models on a dataset and print accuracy and timings")
    _add_data_arguments(ev)
    ev.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated, from: {', '.join(MODELS)} (default: all)")
    ev.add_argument("--split", choices=["random", "leave-one-out", "temporal"], default="random")
    ev.add_argument("--test-size", type=float, default=0.2, help="test fraction (random, temporal)")
    ev.add_argument("-k", type=int, default=10, help="cut-off of the ranking metrics (default 10)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(run=run_evaluate)

    rec = sub.add_parser("recommend", help="fit a model on a dataset and show one user's top-N")
    _add_data_arguments(rec)
    rec.add_argument("--user", required=True, help="raw user id")
    rec.add_argument("-n", type=int, default=10, help="how many items (default 10)")
    rec.add_argument("--model", default="item-knn", help=f"one of: {', '.join(MODELS)} (default item-knn)")
    rec.add_argument("--explain", action="store_true", help="show why under each item")
    rec.set_defaults(run=run_recommend)

    sim = sub.add_parser("similar", help="fit a model on a dataset and show an item's neighbours")
    _add_data_arguments(sim)
    sim.add_argument("--item", required=True, help="raw item id")
    sim.add_argument("-n", type=int, default=10, help="how many items (default 10)")
    sim.add_argument("--model", default="item-knn", help="item-knn or mf (default item-knn)")
    sim.set_defaults(run=run_similar)

    info = sub.add_parser("info", help="versions, OpenMP, threads and BLAS")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=run_info)

    bench = sub.add_parser("bench", help="speed-ups over the NumPy references and the installed peers")
    bench.add_argument("--quick", action="store_true",
                       help="small sizes, under a minute (default: ~1M ratings, a few minutes)")
    bench.add_argument("--cases", default=None,
                       help=f"comma-separated, from: {', '.join(BENCH_CASES)} (default: all)")
    bench.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of text")
    bench.add_argument("--preset", choices=["tiny", "quick", "full"], default=None,
                       help=argparse.SUPPRESS)  # "tiny" is for the tests
    bench.set_defaults(run=run_bench)
    return parser


def _add_data_arguments(parser):
    parser.add_argument("--data", help="MovieLens folder or ratings file, or a CSV file "
                        "(default: the built-in synthetic dataset)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="size of the synthetic dataset (default: small)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    parser.add_argument("--csv-user", default="user", help="user column of a CSV file")
    parser.add_argument("--csv-item", default="item", help="item column of a CSV file")
    parser.add_argument("--csv-rating", default=None, help="rating column of a CSV file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def load_data(args):
    """The dataset the arguments name: a MovieLens folder/file, a CSV, or synthetic data."""
    from fastrec import datasets

    if args.data is None:
        n_users, n_items, n_ratings = SIZES[args.size]
        return f"synthetic-{args.size}", datasets.synthetic(n_users, n_items, n_ratings, seed=args.seed)
    path = Path(args.data)
    if not path.exists():
        raise UsageError(f"--data: no such file or folder: {path}")
    if path.suffix.lower() == ".csv" and path.name not in ("ratings.csv",):
        return path.name, datasets.load_csv(path, user_col=args.csv_user, item_col=args.csv_item,
                                            rating_col=args.csv_rating)
    return path.name, datasets.load_movielens(path)


def split_data(data, args):
    from fastrec import model_selection

    if args.split == "random":
        return model_selection.train_test_split(data, args.test_size, random_state=args.seed)
    if args.split == "temporal":
        return model_selection.temporal_split(data, args.test_size)
    return model_selection.leave_k_out(data, 1, by="time" if data.timestamps is not None else "random",
                                       random_state=args.seed)


def _progress(items, enabled):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="fitting", unit="model", file=sys.stderr, leave=False)


def run_evaluate(args):
    from fastrec.evaluation import evaluate

    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODELS]
    if unknown or not names:
        raise UsageError(f"--models: unknown model(s) {unknown or names}; choose from {', '.join(MODELS)}")
    if args.k < 1:
        raise UsageError(f"-k must be >= 1, got {args.k}")
    dataset_name, data = load_data(args)
    train, test = split_data(data, args)
    rows, skipped = [], []
    for name in _progress(names, enabled=not args.no_progress and not args.json):
        model = MODELS[name][0]()
        if data.is_implicit and model.requires_ratings:
            skipped.append(name)
            continue
        result = evaluate(model, train, test, k=args.k, name=name, num_threads=args.threads)
        rows.append(result.to_dict())
    report = {"dataset": dataset_name, "n_users": data.n_users, "n_items": data.n_items,
              "n_interactions": data.nnz, "split": args.split, "train": train.nnz,
              "test": test.nnz, "k": args.k, "results": rows,
              "skipped_models": skipped}
    if args.json:
        print(json.dumps(report, indent=2, default=_json_value))
    else:
        print(format_table(report))
    return 0


def _fitted(name, data, threads):
    """The named model, fitted on all of ``data``."""
    if name not in MODELS:
        raise UsageError(f"--model: unknown model {name!r}; choose from {', '.join(MODELS)}")
    model = MODELS[name][0]()
    if data.is_implicit and model.requires_ratings:
        raise UsageError(f"--model {name} needs explicit ratings; this data is implicit")
    if "num_threads" in model.get_params():
        model.num_threads = threads
    return model.fit(data)


def _raw_id(text, ids, option):
    """The raw id a command-line string names, checked against the dataset's ids."""
    import numpy as np

    value = text
    if ids.dtype.kind in "iu":
        try:
            value = int(text)
        except ValueError:
            raise UsageError(f"{option}: ids of this dataset are integers, got {text!r}") from None
    if not np.isin(np.array([value], dtype=ids.dtype if ids.dtype.kind in "iuUS" else object), ids)[0]:
        raise UsageError(f"{option}: unknown id {text!r}")
    return value


def _line(rank, item, title, score):
    return f"{rank:>3}. {item}" + (f"  {title}" if title else "") + f"  ({score:.3f})"


def _title(data, item):
    import numpy as np

    if data.item_titles is None:
        return ""
    return str(data.item_titles[data.item_index(np.array([item]))[0]])


def run_recommend(args):
    if args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    _, data = load_data(args)
    user = _raw_id(args.user, data.user_ids, "--user")
    model = _fitted(args.model, data, args.threads)
    items, scores = model.recommend([user], n=args.n)
    rows = []
    for item, score in zip(items[0].tolist(), scores[0].tolist(), strict=True):
        if not math.isfinite(score):
            continue
        row = {"item": item, "title": _title(data, item), "score": score}
        if args.explain and hasattr(model, "explain"):
            why = model.explain(user, item, n=3)
            row["because"] = [{"item": nb.item() if hasattr(nb, "item") else nb, "title": _title(data, nb),
                               "rating": float(r), "contribution": float(c)}
                              for nb, r, c in zip(why.neighbors, why.rating, why.contribution, strict=True)]
        rows.append(row)
    if args.json:
        print(json.dumps({"user": user, "model": args.model, "items": rows}, indent=2, default=_json_value))
        return 0
    print(f"top {len(rows)} for user {user} ({args.model}):")
    for rank, row in enumerate(rows, 1):
        print(_line(rank, row["item"], row["title"], row["score"]))
        for part in row.get("because", []):
            print(f"       because of {part['item']} {part['title']} (rated {part['rating']:g}): "
                  f"{part['contribution']:+.3f}")
    return 0


def run_similar(args):
    if args.n < 1:
        raise UsageError(f"-n must be >= 1, got {args.n}")
    _, data = load_data(args)
    item = _raw_id(args.item, data.item_ids, "--item")
    model = _fitted(args.model, data, args.threads)
    if not hasattr(model, "similar_items"):
        raise UsageError(f"--model {args.model} has no item similarity; use item-knn or mf")
    items, scores = model.similar_items([item], n=args.n)
    rows = [{"item": i, "title": _title(data, i), "similarity": s}
            for i, s in zip(items[0].tolist(), scores[0].tolist(), strict=True) if math.isfinite(s)]
    if args.json:
        print(json.dumps({"item": item, "model": args.model, "similar": rows}, indent=2, default=_json_value))
        return 0
    print(f"items most similar to {item} {_title(data, item)} ({args.model}):")
    for rank, row in enumerate(rows, 1):
        print(_line(rank, row["item"], row["title"], row["similarity"]))
    return 0


def format_table(report):
    k = report["k"]
    header = ["model"] + [h.format(k=k) for _, h, _ in COLUMNS]
    lines = [[row["model"]] + [_cell(row.get(key.format(k=k)), fmt) for key, _, fmt in COLUMNS]
             for row in report["results"]]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    out = [f"{report['dataset']}: {report['n_users']} users, {report['n_items']} items, "
           f"{report['n_interactions']} interactions; {report['split']} split "
           f"({report['train']} train / {report['test']} test)", ""]
    for cells in [header, ["-" * w for w in widths], *lines]:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
    if report["skipped_models"]:
        out.append(f"(skipped, they need explicit ratings: {', '.join(report['skipped_models'])})")
    return "\n".join(out)


def _cell(value, fmt):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return fmt.format(value)


def _json_value(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialise {value!r}")


def run_info(args):
    from fastrec._config import config_info, show_config

    if args.json:
        print(json.dumps(config_info(), indent=2, default=str))
    else:
        show_config()
    return 0


def run_bench(args):
    from fastrec import bench

    try:
        cases = bench.parse_cases(args.cases)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    preset = args.preset or ("quick" if args.quick else "full")
    if args.json:
        report = bench.run(cases, preset=preset, num_threads=args.threads)
        print(json.dumps(report, indent=2, default=_json_value))
    else:
        print(bench.format_machine(bench.machine(args.threads), preset))
        print(bench.format_header(), flush=True)
        report = bench.run(cases, preset=preset, num_threads=args.threads,
                           on_row=lambda row: print(bench.format_row(row), flush=True))
        print(bench.format_footer(report))
    wrong = bench.mismatches(report)
    for row in wrong:
        print(f"fastrec bench: MISMATCH in {row['case']} vs {row['compared_with']}: {row['detail']}",
              file=sys.stderr)
    return 1 if wrong else 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, FileNotFoundError, KeyError, ValueError, TypeError) as exc:
        if os.environ.get("FASTREC_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fastrec: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

"""Rows run again with their trainings retrained at other seeds, and their spread.

A preset's `seed_repeats: {rows: [...], seeds: [...]}` asks for each listed row again, once per seed, on its
training retrained at that seed. The workflow adds them to the preset as ordinary rows and trainings named
`<name>.seed-<s>` (with_seed_repeats; rows sharing a training share its repeats, a training that starts from
another starts from that one's repeat), so every rule runs them unchanged. The report keeps them out of the
papers' tables and figures and gives, per listed row, its J&F over the seeds as mean ± sd (seeds_section), so
that a gap between two rows counts only where it is larger than their spread."""

from __future__ import annotations

import copy
import re

import pandas as pd

REPEAT = re.compile(r"^(?P<base>.+)\.seed-(?P<seed>\d+)$")
MEASURES = ["J&F-Mean", "J-Mean", "F-Mean"]


def repeat_name(name: str, seed: int) -> str:
    """The name of a row's or training's repeat at `seed`."""
    return f"{name}.seed-{seed}"


def repeat_of(name: str) -> tuple[str, int] | None:
    """(base name, seed) of a repeat's name; None for a name that is no repeat."""
    match = REPEAT.match(str(name))
    return (match["base"], int(match["seed"])) if match else None


def with_seed_repeats(rows: dict, trainings: dict, repeats: dict | None,
                      where: str = "seed_repeats") -> tuple[dict, dict]:
    """The preset's rows and trainings with the repeats `repeats` asks for added (the inputs are not changed);
    ValueError, naming the key, for a row that is unknown or trains nothing, or a name taken by the preset."""
    if not repeats:
        return rows, trainings
    rows, trainings = dict(rows), dict(trainings)
    for name in list(rows) + list(trainings):
        if repeat_of(name):
            raise ValueError(f"{where}: the preset's name {name!r} ends like a seed repeat's (.seed-<n>); "
                             "rename it")

    def repeated_training(name: str, seed: int) -> str:
        repeat = repeat_name(name, seed)
        if repeat not in trainings:
            entry = copy.deepcopy(trainings[name])
            entry["settings"] = {**entry["settings"], "seed": seed}
            if entry.get("init_from"):
                entry["init_from"] = repeated_training(entry["init_from"], seed)
            trainings[repeat] = entry
        return repeat

    for row in repeats["rows"]:
        spec = rows.get(row)
        if spec is None or repeat_of(row):
            known = sorted(name for name in rows if not repeat_of(name))
            raise ValueError(f"{where}.rows: unknown row {row!r}; known: {known}")
        if spec.get("training") not in trainings:
            raise ValueError(f"{where}.rows: row {row!r} uses no training of the preset (a checkpoint or released "
                             "weights have no seed to vary); list rows with `training:`")
        for seed in repeats["seeds"]:
            rows[repeat_name(row, seed)] = {**copy.deepcopy(spec), "training": repeated_training(spec["training"], seed)}
    return rows, trainings


def primary_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary without the seed repeats: what the papers' tables and the figures show."""
    if "row" not in summary:
        return summary
    return summary[[repeat_of(row) is None for row in summary["row"]]]


def seed_spread(summary: pd.DataFrame, order: list[str] = ()) -> pd.DataFrame:
    """One line per (evaluation, repeated row): its seeds, each seed's J&F and the mean and sample standard
    deviation of J&F, J and F over the seeds (the row's own run included, at its training's seed), and the
    training of each seed's run. Rows named in `order` (the papers' ablation order) come first, in that order;
    the others follow in the summary's order."""
    frame = summary.assign(base=[(repeat_of(row) or (row, None))[0] for row in summary["row"]])
    repeated = set(frame.loc[frame["base"] != frame["row"], "base"])
    lines = []
    for (evaluation, base), group in frame[frame["base"].isin(repeated)].groupby(["evaluation", "base"], sort=False):
        group = group.sort_values("training_seed")
        line = {"evaluation": evaluation, "row": base,
                "label": group.loc[group["row"] == base, "label"].iloc[0] if (group["row"] == base).any() else base,
                "seeds": [int(seed) for seed in group["training_seed"]],
                "J&F per seed": list(group["J&F-Mean"]), "runs": len(group),
                "trainings": [str(name) if pd.notna(name) else None
                              for name in group.get("training", pd.Series([None] * len(group)))]}
        for measure in MEASURES:
            line[f"{measure} mean"] = group[measure].mean()
            line[f"{measure} sd"] = group[measure].std(ddof=1) if len(group) > 1 else float("nan")
        lines.append(line)
    frame = pd.DataFrame(lines)
    if frame.empty or not order:
        return frame
    rank = {row: place for place, row in enumerate(dict.fromkeys(order))}
    position = [rank.get(row, len(rank) + index) for index, row in enumerate(frame["row"])]
    return frame.assign(_place=position).sort_values(["_place"], kind="stable").drop(columns="_place") \
        .reset_index(drop=True)


def _mean_sd(line: pd.Series, measure: str) -> str:
    mean, sd = 100 * line[f"{measure} mean"], 100 * line[f"{measure} sd"]
    return f"{mean:.1f} ± {sd:.1f}" if pd.notna(sd) else f"{mean:.1f}"


def _paired(line: pd.Series, before: pd.Series) -> list[float] | None:
    """Per-seed J&F differences (line - before) where the two rows ran at the same seeds on the same training at
    each seed (e.g. Ours and Ours - no update on one R): their seeds are then paired; None otherwise."""
    if line["seeds"] != before["seeds"] or line["trainings"] != before["trainings"] or None in line["trainings"]:
        return None
    return [100 * (a - b) for a, b in zip(line["J&F per seed"], before["J&F per seed"], strict=True)]


def _gap_lines(spread: pd.DataFrame, methods: dict[str, str]) -> list[str]:
    """Each row against the previous repeated row of its method: the gap in mean J&F, and whether it is larger
    than the spread. Rows that share each seed's training are compared seed by seed (paired: the spread is the
    sd of the per-seed differences); other rows against the larger of their two spreads."""
    lines, previous = [], {}
    for _, line in spread.iterrows():
        method = methods.get(line["row"])
        before = previous.get(method)
        previous[method] = line
        if before is None:
            continue
        gap = 100 * (line["J&F-Mean mean"] - before["J&F-Mean mean"])
        paired = _paired(line, before)
        if paired is not None and len(paired) > 1:
            spread_max = float(pd.Series(paired).std(ddof=1))
            how = f"paired by seed, one training a seed: {', '.join(f'{d:+.1f}' for d in paired)}; sd {spread_max:.1f}"
        else:
            spread_max = 100 * max(line["J&F-Mean sd"], before["J&F-Mean sd"])
            how = f"larger sd {spread_max:.1f}"
        verdict = "larger than the spread" if abs(gap) > spread_max else "within the spread: not a finding"
        lines.append(f"- `{before['row']}` → `{line['row']}`: {gap:+.1f} J&F ({how}): {verdict}.")
    return lines


def seeds_section(summary: pd.DataFrame, order: list[str] = ()) -> list[str]:
    """The report's seeds tables (Markdown lines; none where the preset repeats no row); `order`: the rows in the
    papers' ablation order (each gap is then a step of the ablation, as the paper reads it)."""
    spread = seed_spread(summary, order)
    if spread.empty:
        return []
    methods = dict(zip(summary["row"], summary["method"], strict=True))
    lines = ["## Seeds: the spread of the trainings", "",
             "These rows ran again with their trainings retrained at other seeds (`seed_repeats` in the preset; "
             "the repeats are the rows `<row>.seed-<n>` of the summary, left out of the tables above). Figures "
             "are x 100, mean ± sample standard deviation over the seeds; a gap between two rows counts only "
             "where it is larger than their spread.", ""]
    for evaluation, group in spread.groupby("evaluation", sort=False):
        lines += [f"### {evaluation}", "",
                  "| Method | Seeds | J&F per seed | J&F | J | F |", "|---|---|---|---|---|---|"]
        for _, line in group.iterrows():
            per_seed = ", ".join(f"{100 * value:.1f}" for value in line["J&F per seed"])
            lines.append(f"| {line['label']} (`{line['row']}`) | {', '.join(map(str, line['seeds']))} | {per_seed} | "
                         + " | ".join(_mean_sd(line, measure) for measure in MEASURES) + " |")
        lines.append("")
        gaps = _gap_lines(group, methods)
        if gaps:
            lines += ["Each row against the previous one of its method (mean J&F):", "", *gaps, ""]
    return lines

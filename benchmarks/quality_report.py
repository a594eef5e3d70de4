"""The quality table in markdown, and its target: anomstream's default against the best baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT = "anomstream-default"
WITHIN = 0.01  # a data set counts when the default is first or at most this far below the best baseline
SHARE = 0.7  # ... on at least this share of the data sets


def target(result: dict[str, Any]) -> dict[str, Any]:
    """Met when the default's mean over the data sets is above every baseline's, and it is first or within 0.01 of
    the best baseline on at least 70% of the data sets; else by how much it misses, on which data sets."""
    baselines = [m for m, d in result["methods"].items() if d["kind"] == "baseline"]
    goal = (f"{DEFAULT} has the best mean over the data sets, and is first or within {WITHIN} of the best baseline "
            f"on at least {SHARE:.0%} of them")  # fmt: skip
    if DEFAULT not in result["mean"] or not baselines:
        return {"goal": goal, "met": None, "why": "not evaluated: no anomstream-default column (see notes)"}
    means = result["mean"]
    best = max(baselines, key=lambda m: means[m])
    rows, short = {}, []
    for name, d in result["datasets"].items():
        rival = max(baselines, key=lambda m: d["roc_auc"][m])
        gap = d["roc_auc"][DEFAULT] - d["roc_auc"][rival]
        rows[name] = {"default": d["roc_auc"][DEFAULT], "best_baseline": rival, "best_baseline_roc_auc": d["roc_auc"][rival],
                      "gap": gap, "ok": gap >= -WITHIN - 1e-12}  # fmt: skip
        if not rows[name]["ok"]:
            short.append(name)
    share = sum(r["ok"] for r in rows.values()) / len(rows)
    best_mean = means[DEFAULT] > means[best]
    better_own = [m for m, d in result["methods"].items() if d["kind"] == "anomstream" and means.get(m, 0) > means[DEFAULT]]
    return {"goal": goal, "met": bool(best_mean and share >= SHARE), "best_mean": best_mean,
            "default_mean": means[DEFAULT], "best_baseline": best, "best_baseline_mean": means[best],
            "mean_gap": means[DEFAULT] - means[best], "share_ok": share, "short_on": short, "datasets": rows,
            "anomstream_columns_above_default": better_own}  # fmt: skip


def verdict(found: dict[str, Any]) -> str:
    if found["met"] is None:
        return f"target ({found['goal']}): {found['why']}"
    lines = [f"target ({found['goal']}): {'met' if found['met'] else 'NOT met'}"]
    lines.append(f"- mean: {DEFAULT} {found['default_mean']:.3f} vs best baseline {found['best_baseline']} "
                 f"{found['best_baseline_mean']:.3f} ({found['mean_gap']:+.3f}): {'best' if found['best_mean'] else 'not best'}")  # fmt: skip
    n = len(found["datasets"])
    ok = round(found["share_ok"] * n)
    lines.append(f"- first or within {WITHIN} of the best baseline on {ok}/{n} data sets ({found['share_ok']:.0%}; goal {SHARE:.0%})")
    for name in found["short_on"]:
        row = found["datasets"][name]
        lines.append(f"  - {name}: {row['default']:.3f}, {-row['gap']:.3f} below {row['best_baseline']} {row['best_baseline_roc_auc']:.3f}")
    if found["anomstream_columns_above_default"]:
        lines.append(f"- anomstream columns with a higher mean than the default: {', '.join(found['anomstream_columns_above_default'])}")
    return "\n".join(lines)


def _cells(values: dict[str, float], names: list[str]) -> list[str]:
    best = max(round(values[m], 3) for m in names if m in values)
    return [("–" if m not in values else f"**{values[m]:.3f}**" if round(values[m], 3) == best else f"{values[m]:.3f}") for m in names]


def _spread(result: dict[str, Any], name: str) -> str:
    """The largest standard deviation over seeds of a data set's figure ("–": a method without randomness)."""
    spreads = [np.std(d["roc_auc_per_seed"][name]) for d in result["datasets"].values() if len(d["roc_auc_per_seed"][name]) > 1]
    return f"{max(spreads):.3f}" if spreads else "–"


def _seconds(result: dict[str, Any], name: str) -> str:
    rows = [c["methods"][name] for d in result["datasets"].values() for c in d["classes"].values()]
    twins = {r["same_as"] for r in rows if "same_as" in r}
    if twins and len(twins) == 1 and all("same_as" in r for r in rows):
        return f"= {twins.pop()}"
    return f"{sum(r['seconds'] for r in rows if 'same_as' not in r):.0f}"


def markdown(result: dict[str, Any]) -> str:
    names = list(result["mean"])
    machine = result["machine"]
    select = result["benchmark"] == "quality-select"
    out = [f"{'Recipe selection on validation splits of TRAIN rows' if select else 'One-class ROC-AUC'}, "
           f"`{result['command']}`, {result['date']}; seeds {result['seeds']}, {_cuts(result)}epochs × {result['epochs_scale']}; "
           f"{machine['cpu_count']} CPUs ({machine['processor']}), load {machine['loadavg'][0]:.1f} at the start, "
           f"{machine.get('loadavg_end', ['?'])[0]:.1f} at the end; {result.get('seconds', 0):.0f} s in all.", ""]  # fmt: skip
    out.append("| data set | " + " | ".join(names) + " |")
    out.append("| --- |" + " ---: |" * len(names))
    for name, d in result["datasets"].items():
        out.append(f"| {name} ({len(d['classes'])} classes) | " + " | ".join(_cells(d["roc_auc"], names)) + " |")
    out.append("| **mean** | " + " | ".join(_cells(result["mean"], names)) + " |")
    if len(result["seeds"]) > 1:
        out.append("| largest std over seeds | " + " | ".join(_spread(result, m) for m in names) + " |")
    out.append("| seconds | " + " | ".join(_seconds(result, m) for m in names) + " |")
    if select:
        out += ["", "Ranking of the candidate recipes (mean validation ROC-AUC over the data sets):", ""]
        out += [f"{i}. {row['candidate']}: {row['mean_validation_roc_auc']:.3f}" for i, row in enumerate(result["ranking"], 1)]
    elif "target" in result:
        out += ["", verdict(result["target"])]
    if result["notes"]:
        out += ["", "Notes: " + "; ".join(result["notes"]) + "."]
    return "\n".join(out)


def _cuts(result: dict[str, Any]) -> str:
    splits = result.get("splits", 1)
    return f"{splits} validation cuts per class (split seeds 0–{splits - 1}), " if splits > 1 else ""

#!/usr/bin/env python3
"""Charts of `skyscan-bench suite --report DIR`, from DIR/results.json.

Usage: suite_charts.py RESULTS.json OUT_DIR
Writes classes.png (time per query class per engine, log scale),
shared.png (T(K)/T(1) against K), latency.png (LV percentiles idle and
under scan load) and load.png (load rate, size on disk). Small PNGs
(they are committed under docs/bench/). Exits 2 without matplotlib.
"""
import json
import os
import sys

COLORS = {"skyscan": "#d62728", "skyscan-server": "#f4a582", "duckdb": "#1f77b4", "duckdb-parquet": "#9ecae1",
          "chdb": "#ff7f0e", "postgres": "#2ca02c"}
LABELS = {"skyscan": "skyscan", "skyscan-server": "skyscan (server)", "duckdb": "DuckDB", "duckdb-parquet": "DuckDB (Parquet)",
          "chdb": "chDB", "postgres": "PostgreSQL + Q3C"}
ORDER = ["skyscan", "skyscan-server", "duckdb", "duckdb-parquet", "chdb", "postgres"]
DPI = 80


def main():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"no matplotlib: {e}", file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        r = json.load(f)
    out = sys.argv[2]
    title = f"{r['objects']:,} Objects, {r['sources']:,} Sources, {r['machine']['cores']} cores"

    # Time per class per engine.
    classes = r["classes"]
    engines = [e for e in ORDER if any(e in c["ms"] for c in classes)]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / max(len(engines), 1)
    for i, e in enumerate(engines):
        xs, ys = [], []
        for j, c in enumerate(classes):
            ms = c["ms"].get(e)
            if ms is not None and ms > 0 and (e == "skyscan" or c["check"].get(e) == "same answers"):
                xs.append(j + (i - (len(engines) - 1) / 2) * width)
                ys.append(ms)
        ax.bar(xs, ys, width, label=LABELS[e], color=COLORS[e])
    ax.set_yscale("log")
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels([c["class"] for c in classes])
    ax.set_ylabel("ms (median, log scale)")
    ax.set_title(f"Time per query class — {title}", fontsize=10)
    ax.legend(fontsize=8, ncol=len(engines))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "classes.png"), dpi=DPI)
    plt.close(fig)

    # Shared scans.
    shared = r["shared"]
    if shared:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        base = next((s for s in shared if s["k"] == 1), None)
        if base:
            ks = [s["k"] for s in shared]
            ax.plot(ks, [s["skyscan_ms"] / base["skyscan_ms"] for s in shared], "o-",
                    color=COLORS["skyscan"], label="skyscan (convoys)")
            if base.get("duckdb_ms"):
                ax.plot(ks, [s["duckdb_ms"] / base["duckdb_ms"] for s in shared if s.get("duckdb_ms")], "s-",
                        color=COLORS["duckdb"], label="DuckDB (a cursor per query)")
            ax.plot(ks, ks, ":", color="grey", label="one after another (K)")
            ax.axhline(1.3, color="black", lw=0.8, ls="--", label="goal 1.3")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log", base=2)
            ax.set_xlabel("K concurrent full scans")
            ax.set_ylabel("T(K) / T(1)")
            ax.set_title("Shared scans", fontsize=10)
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(os.path.join(out, "shared.png"), dpi=DPI)
        plt.close(fig)

    # Latency under load.
    mix = r["mix"]
    if mix:
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        names = [e for e in ORDER if e in mix]
        labels = []
        values = {k: [] for k in ("p50", "p95", "p99")}
        for e in names:
            for state in ("idle", "loaded"):
                labels.append(f"{LABELS[e]}\n{state}")
                for k in values:
                    values[k].append(mix[e][state][k])
        xs = range(len(labels))
        for i, (k, shade) in enumerate((("p50", 1.0), ("p95", 0.7), ("p99", 0.45))):
            ax.bar([x + (i - 1) * 0.27 for x in xs], values[k], 0.27, label=k, alpha=shade,
                   color=[COLORS[e] for e in names for _ in (0, 1)])
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("LV latency, ms (log)")
        ax.set_title("Interactive latency: idle vs. under HV scans (p50/p95/p99)", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "latency.png"), dpi=DPI)
        plt.close(fig)

    # Load rate and size.
    loads = [l for l in r["loads"] if l["engine"] in COLORS]
    if loads:
        rows = r["objects"] + r["sources"]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
        loaded = [l for l in loads if l["seconds"] > 0]
        a1.bar([LABELS[l["engine"]] for l in loaded],
               [rows / (l["seconds"] + l["index_seconds"]) / 1e6 for l in loaded],
               color=[COLORS[l["engine"]] for l in loaded])
        a1.set_ylabel("M rows/s (load + indexes)")
        a1.set_title("Load rate from Parquet", fontsize=10)
        a2.bar([LABELS[l["engine"]] for l in loads], [l["bytes"] / 1e6 for l in loads],
               color=[COLORS[l["engine"]] for l in loads])
        a2.axhline(r["parquet_bytes"] / 1e6, color="grey", ls="--", lw=0.8, label="Parquet (snappy)")
        a2.set_ylabel("MB on disk")
        a2.set_title("Size on disk", fontsize=10)
        a2.legend(fontsize=8)
        for a in (a1, a2):
            a.tick_params(axis="x", labelsize=7, rotation=20)
            a.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "load.png"), dpi=DPI)
        plt.close(fig)


if __name__ == "__main__":
    main()

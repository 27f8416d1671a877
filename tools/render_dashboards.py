#!/usr/bin/env python3
"""Render a provisioned Grafana dashboard (deploy/grafana/dashboards/*.json) to a PNG from a live Prometheus.

Why: Grafana is not packaged for these machines, yet docs/operations.md should show what the dashboards look like.
This draws each panel as Grafana lays it out (gridPos), from the panel's own PromQL run through the Prometheus
HTTP API (query_range for time series, an instant query for stats): the picture is made of the same queries.

    python tools/render_dashboards.py --prometheus http://127.0.0.1:9090 --dashboard overview \\
        --minutes 10 --out docs/img/dashboard-overview.png

Needs matplotlib (a dev dependency). The Prometheus: the compose stack's, or any scraping a `flowdock up` mesh
(tests/deploy/test_prometheus.py starts one and renders through this script).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the non-interactive backend
import matplotlib.ticker
from matplotlib.axes import Axes

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), template).strip() or "value"


def human(value: float, unit: str) -> str:
    """A short reading of `value` in a Grafana unit (the few the dashboards use)."""
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit in ("bytes", "Bps"):
        suffix = "/s" if unit == "Bps" else ""
        for scale in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(value) < 1024:
                return f"{value:.1f} {scale}{suffix}"
            value /= 1024
        return f"{value:.1f} PiB{suffix}"
    if unit == "reqps":
        return f"{value:.2f}/s"
    return f"{value:.4g}"


class Prometheus:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=30)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        reply = self.client.get(f"/api/v1/{path}", params=params).json()
        if reply.get("status") != "success":
            raise SystemExit(f"{params.get('query')}: {reply.get('error')}")
        return reply["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        data = self._get("query", {"query": expr})
        return list(data["result"]) if data["resultType"] == "vector" else [{"metric": {}, "value": data["result"]}]

    def range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return list(self._get("query_range", {"query": expr, "start": start, "end": end, "step": step})["result"])


def draw_stat(ax: Axes, panel: dict[str, Any], prom: Prometheus) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    values = [float(s["value"][1]) for t in panel["targets"] for s in prom.instant(t["expr"])]
    text = human(sum(values), unit) if values else "no data"
    ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=18, fontweight="bold", color="#1f6f3f")
    ax.set_xticks([])
    ax.set_yticks([])


def draw_series(ax: Axes, panel: dict[str, Any], prom: Prometheus, start: float, end: float) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    step = max(1.0, (end - start) / 120)
    drawn = 0
    for target in panel["targets"]:
        for series in prom.range(target["expr"], start, end, step)[:8]:
            points = [(float(t) - end, float(v)) for t, v in series["values"] if not math.isnan(float(v))]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot([x / 60 for x in xs], ys, linewidth=1.2, label=legend(target["legendFormat"], series["metric"]))
                drawn += 1
    if drawn:
        ax.legend(fontsize=5, loc="upper left", frameon=False, ncol=2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: human(v, unit)))
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.tick_params(labelsize=6)
    ax.set_xlabel("minutes", fontsize=6)
    ax.grid(alpha=0.3)


def render(dashboard: dict[str, Any], prom: Prometheus, minutes: float, out: Path) -> None:
    """One figure, panels placed by gridPos (24 columns; one grid row = 30 px in Grafana)."""
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(14, rows * 0.42 + 0.6), dpi=72)
    fig.suptitle(dashboard["title"], fontsize=13, fontweight="bold", x=0.01, ha="left")
    end = time.time()
    start = end - minutes * 60
    top = 1 - 0.6 / (rows * 0.42 + 0.6)
    row = top / rows  # one grid row, as a fraction of the figure's height
    for panel in panels:
        g = panel["gridPos"]
        pad = 0.012
        below = 0.9 * row if panel["type"] != "stat" else 0.3 * row  # room for tick labels
        inset = 3 * pad if panel["type"] != "stat" else pad  # room for the value axis' labels
        left, width = g["x"] / 24 + inset, g["w"] / 24 - inset - pad
        bottom = top - (g["y"] + g["h"]) * row + below
        ax = fig.add_axes((left, bottom, width, g["h"] * row - below - 0.7 * row))
        ax.set_title(panel["title"], fontsize=8, loc="left")
        if panel["type"] == "stat":
            draw_stat(ax, panel, prom)
        else:
            draw_series(ax, panel, prom, start, end)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    parser.add_argument("--dashboard", default="overview", help="file name in deploy/grafana/dashboards (no .json)")
    parser.add_argument("--minutes", type=float, default=15, help="time range drawn, ending now")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    dashboard = json.loads((DASHBOARDS / f"{args.dashboard}.json").read_text())
    render(dashboard, Prometheus(args.prometheus), args.minutes, args.out)
    print(f"{args.out}: {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

/**
 * The dashboard's charts, on uPlot: time series whose set of lines may change (a new game
 * appears: the chart is rebuilt), and a bar chart for histogram buckets. Charts follow
 * their container's width.
 */

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { colourFor } from "../common/dom.js";

const AXIS = { stroke: "#8b949e", grid: { stroke: "#222b3a", width: 1 }, ticks: { stroke: "#222b3a", width: 1 } };
const HEIGHT = 180;

function widthOf(node: HTMLElement): number {
  return Math.max(240, Math.floor(node.clientWidth));
}

/** Follows the container's width. */
function follow(container: HTMLElement, chart: () => uPlot | null): void {
  new ResizeObserver(() => {
    const c = chart();
    if (c) c.setSize({ width: widthOf(container), height: HEIGHT });
  }).observe(container);
}

export interface Line {
  label: string;
  values: (number | null)[];
  colour?: string;
}

/** A time series chart: `update(times, lines)`, times in Unix seconds. */
export class TimeChart {
  private chart: uPlot | null = null;
  private labels = "";

  constructor(
    private readonly container: HTMLElement,
    private readonly format: (v: number) => string,
  ) {
    follow(container, () => this.chart);
  }

  /** Whether the chart has been drawn at least once. */
  get drawn(): boolean {
    return this.chart !== null;
  }

  update(times: number[], lines: Line[]): void {
    const labels = lines.map((l) => l.label).join("\u0000");
    const data = [times, ...lines.map((l) => l.values)] as uPlot.AlignedData;
    if (this.chart && labels === this.labels) {
      this.chart.setData(data);
      return;
    }
    this.chart?.destroy();
    this.labels = labels;
    const fmt = this.format;
    this.chart = new uPlot(
      {
        width: widthOf(this.container),
        height: HEIGHT,
        cursor: { drag: { x: false, y: false } },
        legend: { live: true },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [
          { ...AXIS },
          { ...AXIS, size: 64, values: (_u, splits) => splits.map((v) => fmt(v)) },
        ],
        series: [
          {},
          ...lines.map((l) => ({
            label: l.label,
            stroke: l.colour ?? colourFor(l.label),
            width: 1.5,
            value: (_u: uPlot, v: number | null) => (v === null ? "–" : fmt(v)),
          })),
        ],
      },
      data,
      this.container,
    );
  }
}

/** A bar chart of histogram buckets: `update(labels, counts)`. */
export class BucketChart {
  private chart: uPlot | null = null;
  private labels: string[] = [];

  constructor(private readonly container: HTMLElement) {
    follow(container, () => this.chart);
  }

  get drawn(): boolean {
    return this.chart !== null;
  }

  update(labels: string[], counts: number[], seriesLabel: string): void {
    const xs = labels.map((_, i) => i);
    const data = [xs, counts] as uPlot.AlignedData;
    if (this.chart && labels.join() === this.labels.join()) {
      this.chart.setData(data);
      return;
    }
    this.chart?.destroy();
    this.labels = labels;
    const bars = uPlot.paths.bars?.({ size: [0.8, 64] });
    this.chart = new uPlot(
      {
        width: widthOf(this.container),
        height: HEIGHT,
        cursor: { drag: { x: false, y: false } },
        legend: { live: true },
        scales: {
          x: { time: false, range: () => [-0.5, labels.length - 0.5] },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [
          {
            ...AXIS,
            splits: () => xs,
            values: (_u, splits) => splits.map((i) => this.labels[i] ?? ""),
          },
          { ...AXIS, size: 64 },
        ],
        series: [
          { value: (_u, i) => (i === null ? "–" : (this.labels[i] ?? "")) },
          { label: seriesLabel, stroke: "#58a6ff", fill: "rgba(88,166,255,.45)", ...(bars ? { paths: bars } : {}) },
        ],
      },
      data,
      this.container,
    );
  }
}

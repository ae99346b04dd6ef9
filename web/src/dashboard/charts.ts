/**
 * The dashboard's charts, on uPlot: time series whose set of lines may change (a new game
 * appears: the chart is rebuilt), and a bar chart for histogram buckets. Charts follow
 * their container's width.
 */

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { colourFor } from "../common/dom.js";

const AXIS = {
  stroke: "#8b949e",
  font: "11px system-ui, sans-serif",
  grid: { stroke: "#222b3a", width: 1 },
  ticks: { stroke: "#222b3a", width: 1 },
};
const HEIGHT = 180;
/** Width of the value axis: room for `999.9 kB/s`. */
const Y_AXIS_SIZE = 78;
/** Steps of an axis that counts things: whole numbers only. */
const WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9];

/** Steps of the time axis, in seconds. */
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600];

/** Unix seconds as the local wall clock, `14:03:07`. */
function clock(secs: number): string {
  const d = new Date(secs * 1000);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

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

  /**
   * @param format how values are written on the axis
   * @param whole the values are counts: the axis steps by whole numbers
   */
  constructor(
    private readonly container: HTMLElement,
    private readonly format: (v: number) => string,
    private readonly whole = false,
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
        legend: { live: false },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] } },
        axes: [
          { ...AXIS, incrs: TIME_STEPS, values: (_u, splits) => splits.map(clock) },
          {
            ...AXIS,
            size: Y_AXIS_SIZE,
            values: (_u, splits) => splits.map((v) => fmt(v)),
            ...(this.whole ? { incrs: WHOLE_STEPS } : {}),
          },
        ],
        series: [
          {},
          ...lines.map((l) => ({
            label: l.label,
            stroke: l.colour ?? colourFor(l.label),
            width: 1.5,
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
        legend: { live: false },
        scales: {
          x: { time: false, range: () => [-0.5, labels.length - 0.5] },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
        },
        axes: [
          {
            ...AXIS,
            splits: () => xs,
            // Every other label when they would not fit side by side.
            values: (u, splits) => {
              const thin = u.width / Math.max(1, this.labels.length) < 42;
              return splits.map((i) => (thin && i % 2 === 1 ? "" : (this.labels[i] ?? "")));
            },
          },
          { ...AXIS, size: Y_AXIS_SIZE, incrs: WHOLE_STEPS },
        ],
        series: [
          {},
          { label: seriesLabel, stroke: "#58a6ff", fill: "rgba(88,166,255,.45)", ...(bars ? { paths: bars } : {}) },
        ],
      },
      data,
      this.container,
    );
  }
}

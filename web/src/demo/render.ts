/**
 * Drawing the arena on a canvas: the field scaled to the canvas (device pixels), the
 * pickups, the other players as interpolated, the local player as predicted with a faint
 * ring where the server last had it (the gap is the prediction at work).
 */

import { colourFor } from "../common/dom.js";
import { type ArenaPlayer, type ArenaState, FIELD_SIZE, PICKUP_RADIUS } from "./arena.js";

const PLAYER_RADIUS = 14;

export interface Frame {
  /** Everyone but the local player, interpolated. */
  others: ArenaState | null;
  /** The local player as predicted (null before the first snapshot). */
  me: ArenaPlayer | null;
  /** The local player in the newest authoritative snapshot. */
  meServer: ArenaPlayer | null;
  /** Pickups (from the newest snapshot: they do not move). */
  pickups: [number, number][];
  meId: string;
}

/** Sizes the canvas's backing store to its CSS size times the device pixel ratio. */
export function fitCanvas(canvas: HTMLCanvasElement): void {
  const ratio = window.devicePixelRatio || 1;
  const rect = canvas.getBoundingClientRect();
  const w = Math.max(1, Math.round(rect.width * ratio));
  const h = Math.max(1, Math.round(rect.height * ratio));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
}

export function draw(canvas: HTMLCanvasElement, frame: Frame): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const scale = Math.min(canvas.width, canvas.height) / FIELD_SIZE;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#0d1117";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(scale, 0, 0, scale, 0, 0);

  ctx.strokeStyle = "#1c2330";
  ctx.lineWidth = 1 / scale;
  for (let v = 0; v <= FIELD_SIZE; v += 100) {
    ctx.beginPath();
    ctx.moveTo(v, 0);
    ctx.lineTo(v, FIELD_SIZE);
    ctx.moveTo(0, v);
    ctx.lineTo(FIELD_SIZE, v);
    ctx.stroke();
  }

  ctx.fillStyle = "#e3b341";
  for (const [x, y] of frame.pickups) {
    ctx.beginPath();
    ctx.arc(x, y, PICKUP_RADIUS / 3, 0, Math.PI * 2);
    ctx.fill();
  }

  for (const p of frame.others?.players ?? []) {
    if (p.id === frame.meId) continue;
    drawPlayer(ctx, p, false, scale);
  }
  if (frame.meServer) {
    ctx.strokeStyle = "rgba(255,255,255,0.35)";
    ctx.lineWidth = 2 / scale;
    ctx.beginPath();
    ctx.arc(frame.meServer.x, frame.meServer.y, PLAYER_RADIUS, 0, Math.PI * 2);
    ctx.stroke();
  }
  if (frame.me) drawPlayer(ctx, frame.me, true, scale);
}

function drawPlayer(ctx: CanvasRenderingContext2D, p: ArenaPlayer, me: boolean, scale: number): void {
  ctx.fillStyle = colourFor(p.id);
  ctx.beginPath();
  ctx.arc(p.x, p.y, PLAYER_RADIUS, 0, Math.PI * 2);
  ctx.fill();
  if (me) {
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 3 / scale;
    ctx.stroke();
  }
  ctx.fillStyle = "#c9d1d9";
  ctx.font = `${13 / scale}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  // Labels stay inside the field, also for players at its edges.
  const labelX = Math.max(60, Math.min(FIELD_SIZE - 60, p.x));
  const labelY = p.y - PLAYER_RADIUS - 6 < 20 ? p.y + PLAYER_RADIUS + 18 : p.y - PLAYER_RADIUS - 6;
  ctx.fillText(`${me ? "you" : shortId(p.id)} · ${p.score}`, labelX, labelY);
}

/** The last characters of a guest id (`guest_…`), enough to tell players apart. */
export function shortId(id: string): string {
  return id.length > 8 ? `…${id.slice(-6)}` : id;
}

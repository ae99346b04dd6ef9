/**
 * The built-in `arena` game as the demo sees it (shard/src/games/arena.rs): a 1000 x 1000
 * field, inputs `{dx, dy}` in [-1, 1] that set a player's direction, a move of
 * `speed / tick_rate_hz` units per tick in that direction, pickups for score.
 *
 * Prediction: the demo sends one input per tick while a direction is held (and one
 * `{0, 0}` when it is released), so each unacknowledged input stands for one tick of
 * movement the server has yet to run. `predictArena` applies exactly that to the local
 * player; reconciliation (in `@pylon/client`) replays the unacknowledged inputs over every
 * authoritative snapshot.
 */

/** Side of the square field, in world units (`FIELD_SIZE`). */
export const FIELD_SIZE = 1000;
/** Player speed at full input, units per second (`ArenaParams::speed` default). */
export const DEFAULT_SPEED = 250;
/** Pickup collection radius (`PICKUP_RADIUS`). */
export const PICKUP_RADIUS = 24;

export interface ArenaPlayer {
  id: string;
  x: number;
  y: number;
  score: number;
}

export interface ArenaState {
  time_left_secs: number;
  players: ArenaPlayer[];
  pickups: [number, number][];
}

export interface ArenaOutcome {
  reason: string;
  winner: string | null;
  scores: [string, number][];
}

export interface Move {
  dx: number;
  dy: number;
}

/** An axis as the server clamps it: [-1, 1], NaN as 0. */
export function clampAxis(v: number): number {
  if (Number.isNaN(v)) return 0;
  return Math.max(-1, Math.min(1, v));
}

/** A direction from held keys: each axis in {-1, 0, 1}, diagonals scaled to length 1. */
export function direction(left: boolean, right: boolean, up: boolean, down: boolean): Move {
  const dx = (right ? 1 : 0) - (left ? 1 : 0);
  const dy = (down ? 1 : 0) - (up ? 1 : 0);
  if (dx !== 0 && dy !== 0) return { dx: dx * Math.SQRT1_2, dy: dy * Math.SQRT1_2 };
  return { dx, dy };
}

/**
 * The prediction step for player `me`: one tick of movement in the input's direction,
 * clamped to the field like the server's. Pure: returns a new state, shares the players it
 * does not change.
 */
export function predictArena(me: string, speed: number, tickRateHz: number) {
  const step = speed / Math.max(1, tickRateHz);
  return (state: ArenaState, input: Move): ArenaState => ({
    ...state,
    players: state.players.map((p) =>
      p.id === me
        ? {
            ...p,
            x: Math.max(0, Math.min(FIELD_SIZE, p.x + clampAxis(input.dx) * step)),
            y: Math.max(0, Math.min(FIELD_SIZE, p.y + clampAxis(input.dy) * step)),
          }
        : p,
    ),
  });
}

/** A player by id, or `undefined`. */
export function findPlayer(state: ArenaState | null, id: string): ArenaPlayer | undefined {
  return state?.players.find((p) => p.id === id);
}

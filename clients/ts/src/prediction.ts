/**
 * Client-side prediction with reconciliation. The app supplies a pure
 * `predict(state, input) => state`; every input is applied locally at once, and kept until
 * the server acknowledges it. On each authoritative snapshot carrying ack N, inputs with
 * seq <= N are dropped (the server state already includes them) and the remaining ones
 * are replayed over the authoritative state.
 *
 * `predict` must not modify its arguments: the authoritative state may be a delta base.
 */

export type PredictFn<S, I> = (state: S, input: I) => S;

export interface PendingInput<I> {
  seq: number;
  input: I;
}

export class Predictor<S, I> {
  private pendingInputs: PendingInput<I>[] = [];
  private authoritativeState: S | null = null;
  private predictedState: S | null = null;

  /**
   * @param predict the game's pure step for one input
   * @param maxPending inputs kept at most while unacknowledged (the oldest go first)
   */
  constructor(
    private readonly predict: PredictFn<S, I>,
    private readonly maxPending = 256,
  ) {}

  /** The newest state from the server. */
  get authoritative(): S | null {
    return this.authoritativeState;
  }

  /** The authoritative state with every unacknowledged input replayed over it. */
  get predicted(): S | null {
    return this.predictedState;
  }

  /** Inputs sent and not yet acknowledged, oldest first. */
  get pending(): readonly PendingInput<I>[] {
    return this.pendingInputs;
  }

  /** Records an input the client just sent and applies it to the predicted state. */
  input(seq: number, input: I): S | null {
    this.pendingInputs.push({ seq, input });
    if (this.pendingInputs.length > this.maxPending) this.pendingInputs.shift();
    if (this.predictedState !== null) this.predictedState = this.predict(this.predictedState, input);
    return this.predictedState;
  }

  /**
   * Takes an authoritative snapshot with its ack (`null`: no input processed yet): drops
   * the acknowledged inputs and replays the others over it. Returns the predicted state.
   */
  reconcile(authoritative: S, ack: number | null): S {
    if (ack !== null) {
      let drop = 0;
      while (drop < this.pendingInputs.length && this.pendingInputs[drop]!.seq <= ack) drop += 1;
      if (drop > 0) this.pendingInputs.splice(0, drop);
    }
    this.authoritativeState = authoritative;
    let state = authoritative;
    for (const p of this.pendingInputs) state = this.predict(state, p.input);
    this.predictedState = state;
    return state;
  }

  /** Forgets the pending inputs (a new subscription cannot acknowledge the old socket's). */
  reset(): void {
    this.pendingInputs = [];
    this.predictedState = this.authoritativeState;
  }
}

/**
 * Typed entity CRUD over the entity API (rows of the entities a `pylon.manifest.json`
 * declares): pages by offset or keyset cursor, get, create, update, delete, all-or-nothing
 * transactions, and the change log (`/api/sync/pull`).
 */

import { PylonError, ResyncRequiredError } from "./errors.js";
import { type HttpOptions, type RequestOptions, requestJson } from "./http.js";

/** A stored row: the entity's fields plus its `id`. */
export type Row<T> = T & { id: string };

/** Filters: `id`, unique fields and indexed fields, by equality. */
export type Where = Record<string, string | number | boolean>;

export interface ListPage<T> {
  data: Row<T>[];
  /** Rows matching the filters. */
  count: number;
  offset: number;
  limit: number;
}

export interface CursorPage<T> {
  data: Row<T>[];
  /** Pass as `after` for the next page; `null` at the end. */
  nextCursor: string | null;
  hasMore: boolean;
}

/** One operation of a transaction. */
export type TransactOp =
  | { op: "insert"; entity: string; id?: string; data: Record<string, unknown> }
  | { op: "update"; entity: string; id: string; data: Record<string, unknown> }
  | { op: "delete"; entity: string; id: string };

/** A committed change, as the change log and the live feeds carry it. */
export interface ChangeEvent<T = Record<string, unknown>> {
  seq: number;
  entity: string;
  row_id: string;
  kind: "insert" | "update" | "delete";
  /** The row after the change (absent for deletes). */
  data?: Row<T>;
  timestamp: string;
}

export interface PullPage {
  changes: ChangeEvent[];
  cursor: { last_seq: number };
  has_more: boolean;
}

const enc = encodeURIComponent;

function withSignal(req: RequestOptions, signal?: AbortSignal): RequestOptions {
  if (signal) req.signal = signal;
  return req;
}

/** CRUD for one entity. Get one with `entities<Player>("Player", { baseUrl, token })`. */
export class EntityApi<T extends object = Record<string, unknown>> {
  constructor(
    readonly name: string,
    private readonly http: HttpOptions,
  ) {}

  private get path(): string {
    return `/api/entities/${enc(this.name)}`;
  }

  /** A page by offset: `GET /api/entities/:E?limit=&offset=&<field>=<value>`. */
  list(opts: { limit?: number; offset?: number; where?: Where; signal?: AbortSignal } = {}): Promise<ListPage<T>> {
    const query: RequestOptions["query"] = { ...opts.where, limit: opts.limit, offset: opts.offset };
    return requestJson<ListPage<T>>(this.http, "GET", this.path, withSignal({ query }, opts.signal));
  }

  /** A keyset page: `GET /api/entities/:E/cursor?after=<id>&limit=N`. */
  async page(opts: { after?: string | null; limit?: number; where?: Where; signal?: AbortSignal } = {}): Promise<CursorPage<T>> {
    const query: RequestOptions["query"] = { ...opts.where, after: opts.after ?? undefined, limit: opts.limit };
    const raw = await requestJson<{ data: Row<T>[]; next_cursor: string | null; has_more: boolean }>(
      this.http,
      "GET",
      `${this.path}/cursor`,
      withSignal({ query }, opts.signal),
    );
    return { data: raw.data, nextCursor: raw.next_cursor ?? null, hasMore: raw.has_more };
  }

  /** Every row, page by page (keyset cursor). */
  async *all(opts: { limit?: number; where?: Where; signal?: AbortSignal } = {}): AsyncGenerator<Row<T>> {
    let after: string | null = null;
    for (;;) {
      const page: CursorPage<T> = await this.page({ ...opts, after });
      yield* page.data;
      if (!page.hasMore || page.nextCursor === null) return;
      after = page.nextCursor;
    }
  }

  /** One row: `GET /api/entities/:E/:id` (a `PylonError` 404 `NOT_FOUND` when absent). */
  get(id: string, signal?: AbortSignal): Promise<Row<T>> {
    return requestJson<Row<T>>(this.http, "GET", `${this.path}/${enc(id)}`, withSignal({}, signal));
  }

  /** Creates a row; returns its id. */
  async create(data: T | Partial<T>, signal?: AbortSignal): Promise<string> {
    const res = await requestJson<{ id: string }>(this.http, "POST", this.path, withSignal({ body: data }, signal));
    if (typeof res?.id !== "string") throw new PylonError(0, "INVALID_RESPONSE", "create answered without id");
    return res.id;
  }

  /** Changes some fields of a row. */
  async update(id: string, patch: Partial<T>, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http, "PATCH", `${this.path}/${enc(id)}`, withSignal({ body: patch }, signal));
  }

  /** Deletes a row. */
  async delete(id: string, signal?: AbortSignal): Promise<void> {
    await requestJson(this.http, "DELETE", `${this.path}/${enc(id)}`, withSignal({}, signal));
  }

  /** Transaction operations on this entity, for `transact`. */
  readonly op = {
    insert: (data: T | Partial<T>, id?: string): TransactOp => {
      const op: TransactOp = { op: "insert", entity: this.name, data: data as Record<string, unknown> };
      if (id !== undefined) op.id = id;
      return op;
    },
    update: (id: string, data: Partial<T>): TransactOp => ({
      op: "update",
      entity: this.name,
      id,
      data: data as Record<string, unknown>,
    }),
    delete: (id: string): TransactOp => ({ op: "delete", entity: this.name, id }),
  };
}

/** CRUD for entity `name`. */
export function entities<T extends object = Record<string, unknown>>(name: string, http: HttpOptions = {}): EntityApi<T> {
  return new EntityApi<T>(name, http);
}

/** `POST /api/transact`: every operation or none. Returns the ids (inserted or touched), in order. */
export async function transact(http: HttpOptions, ops: TransactOp[], signal?: AbortSignal): Promise<string[]> {
  const res = await requestJson<{ committed: boolean; ids: string[] }>(http, "POST", "/api/transact", withSignal({ body: ops }, signal));
  return res.ids;
}

/**
 * Changes after `since`: `GET /api/sync/pull?since=N&limit=M`.
 *
 * @throws ResyncRequiredError (410) when the log no longer holds `since`.
 */
export async function pullChanges(http: HttpOptions, since = 0, limit?: number, signal?: AbortSignal): Promise<PullPage> {
  try {
    return await requestJson<PullPage>(http, "GET", "/api/sync/pull", withSignal({ query: { since, limit } }, signal));
  } catch (e) {
    if (e instanceof PylonError && e.code === "RESYNC_REQUIRED") {
      const oldest = e.details.oldest_seq;
      throw new ResyncRequiredError(typeof oldest === "number" ? oldest : undefined, e.message);
    }
    throw e;
  }
}

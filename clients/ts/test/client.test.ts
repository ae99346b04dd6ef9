import { describe, expect, it } from "vitest";
import { createClient } from "../src/client.js";
import { PylonError } from "../src/errors.js";
import { fakeFetch, json } from "./fakes.js";

describe("createClient", () => {
  it("shares base URL, token and fetch; guest() gives a client with the new token", async () => {
    const { fetch, requests } = fakeFetch({
      "POST /api/auth/guest": () => json(200, { token: "g1", user_id: "guest_1", expires_at: 1 }),
      "GET /api/entities/Player": () => json(200, { data: [{ id: "r1", displayName: "ada" }], count: 1, offset: 0, limit: 10 }),
      "GET /api/entities/Player/cursor": () => json(200, { data: [], next_cursor: null, has_more: false }),
      "POST /api/shards": () => json(201, { id: "local-1", running: true, tick: 0, subscribers: 0, input_queue: 0, game: "arena", tick_rate_hz: 20, state: "starting" }),
      "POST /api/shards/local-1/input": () => json(200, { accepted: true, seq: 3 }),
      "GET /api/sync/pull": () => json(410, { error: { code: "RESYNC_REQUIRED", message: "gone", oldest_seq: 7 } }),
    });
    const admin = createClient({ baseUrl: "http://127.0.0.1:9", token: "admin-token", fetch });
    const { session, client } = await admin.guest();
    expect(session.user_id).toBe("guest_1");
    expect(requests[0]!.headers.authorization).toBe("Bearer admin-token");
    const page = await client.entities<{ displayName: string }>("Player").list({ limit: 10, where: { displayName: "ada" } });
    expect(page.data[0]!.displayName).toBe("ada");
    expect(requests[1]!.url.toString()).toBe("http://127.0.0.1:9/api/entities/Player?displayName=ada&limit=10");
    expect(requests[1]!.headers.authorization).toBe("Bearer g1");
    expect(await client.entities("Player").page({ after: "r1", limit: 5 })).toEqual({ data: [], nextCursor: null, hasMore: false });
    expect(requests[2]!.url.search).toBe("?after=r1&limit=5");
    const shard = await client.createShard("arena", { pickups: 2 });
    expect(requests[3]!.body).toEqual({ game: "arena", params: { pickups: 2 } });
    expect(await client.postInput(shard.id, { dx: 1 }, 3)).toEqual({ accepted: true, seq: 3 });
    expect(requests[4]!.body).toEqual({ input: { dx: 1 }, client_seq: 3 });
    const err = await client.pull(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PylonError);
    expect([(err as PylonError).code, (err as { oldestSeq?: number }).oldestSeq]).toEqual(["RESYNC_REQUIRED", 7]);
  });
});

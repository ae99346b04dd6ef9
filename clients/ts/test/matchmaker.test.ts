// findMatch and pickRegion against recorded answers of the matchmaker and regions routes,
// in the server's shapes (docs/MATCHMAKER.md); live.test.ts runs findMatch against the
// real server.
import { describe, expect, it } from "vitest";
import { PylonError } from "../src/errors.js";
import { findMatch, interpretTicket, pickRegion } from "../src/matchmaker.js";
import { StreamBody, fakeFetch, json, sse, until } from "./fakes.js";

const base = "https://play.example.com";
const matched = {
  status: "matched",
  shard_id: "eu-7h3k2",
  region: "eu",
  ws_url: "wss://eu.example.com/shard",
  sid: "guest_1",
  expires_at: 1798655549,
};

describe("findMatch", () => {
  it("files a ticket and takes the assignment pushed on the event stream", async () => {
    const stream = new StreamBody();
    const { fetch, requests } = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "t1", status: "queued" }),
      "GET /api/matchmaker/tickets/t1/events": (_r, signal) => sse(stream, signal),
    });
    const queued: string[] = [];
    const pending = findMatch({
      baseUrl: base,
      token: "tok",
      fetch,
      game: "arena",
      mode: "duo",
      party: ["guest_2"],
      skill: 1200,
      latencies: { eu: 31, us: 95 },
      onQueued: (id) => queued.push(id),
    });
    await until(() => requests.length === 2, 500, "event stream");
    stream.write(`data: ${JSON.stringify({ status: "queued" })}\n\n`);
    stream.write(`event: matched\ndata: ${JSON.stringify(matched)}\n\n`);
    const a = await pending;
    expect(a).toMatchObject({ ticketId: "t1", shardId: "eu-7h3k2", region: "eu", wsUrl: "wss://eu.example.com/shard", sid: "guest_1", expiresAt: 1798655549 });
    expect(queued).toEqual(["t1"]);
    expect(requests[0]!.body).toEqual({ game: "arena", mode: "duo", party: ["guest_2"], skill: 1200, latencies: { eu: 31, us: 95 } });
    expect(requests[0]!.headers.authorization).toBe("Bearer tok");
    expect(requests[1]!.headers.accept).toBe("text/event-stream");
    expect(requests.some((r) => r.method === "DELETE")).toBe(false);
  });

  it("polls every interval when the event stream is not there", async () => {
    let polls = 0;
    const { fetch, requests } = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "t2", status: "queued" }),
      "GET /api/matchmaker/tickets/t2": () => (++polls < 3 ? json(200, { status: "queued" }) : json(200, matched)),
    });
    const a = await findMatch({ baseUrl: base, fetch, game: "arena", pollIntervalMs: 5 });
    expect(a.shardId).toBe("eu-7h3k2");
    expect(polls).toBe(3);
    expect(requests.map((r) => `${r.method} ${r.url.pathname}`)).toEqual([
      "POST /api/matchmaker/tickets",
      "GET /api/matchmaker/tickets/t2/events",
      "GET /api/matchmaker/tickets/t2",
      "GET /api/matchmaker/tickets/t2",
      "GET /api/matchmaker/tickets/t2",
    ]);
  });

  it("aborting cancels the ticket with DELETE and rejects TICKET_CANCELLED", async () => {
    const stream = new StreamBody();
    const { fetch, requests } = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "t3", status: "queued" }),
      "GET /api/matchmaker/tickets/t3/events": (_r, signal) => sse(stream, signal),
      "DELETE /api/matchmaker/tickets/t3": () => json(200, { ticket_id: "t3", status: "cancelled" }),
    });
    const ctrl = new AbortController();
    const pending = findMatch({ baseUrl: base, fetch, game: "arena", signal: ctrl.signal });
    await until(() => requests.length === 2, 500, "event stream");
    ctrl.abort();
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PylonError);
    expect((err as PylonError).code).toBe("TICKET_CANCELLED");
    expect(requests.at(-1)!.method).toBe("DELETE");
  });

  it("a timeout cancels too, with TICKET_TIMEOUT", async () => {
    const { fetch, requests } = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "t4", status: "queued" }),
      "GET /api/matchmaker/tickets/t4": () => json(200, { status: "queued" }),
      "DELETE /api/matchmaker/tickets/t4": () => new Response(null, { status: 204 }),
    });
    const err = await findMatch({ baseUrl: base, fetch, game: "arena", pollIntervalMs: 5, timeoutMs: 40 }).catch((e: unknown) => e);
    expect((err as PylonError).code).toBe("TICKET_TIMEOUT");
    expect(requests.at(-1)!.method).toBe("DELETE");
  });

  it("server errors and failed tickets are typed", async () => {
    const refused = fakeFetch({
      "POST /api/matchmaker/tickets": () =>
        json(400, { error: { code: "UNKNOWN_GAME", message: "no game named \"chess\"", hint: "registered games: arena" } }),
    });
    const e1 = (await findMatch({ baseUrl: base, fetch: refused.fetch, game: "chess" }).catch((e: unknown) => e)) as PylonError;
    expect([e1.status, e1.code, e1.hint]).toEqual([400, "UNKNOWN_GAME", "registered games: arena"]);

    const expired = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "t5", status: "queued" }),
      "GET /api/matchmaker/tickets/t5": () => json(200, { status: "expired" }),
    });
    const e2 = (await findMatch({ baseUrl: base, fetch: expired.fetch, game: "arena", pollIntervalMs: 5 }).catch((e: unknown) => e)) as PylonError;
    expect(e2.code).toBe("TICKET_EXPIRED");

    const gone = fakeFetch({
      "POST /api/matchmaker/tickets": () => json(201, { ticket_id: "t6", status: "queued" }),
      "GET /api/matchmaker/tickets/t6": () => json(404, { error: { code: "TICKET_NOT_FOUND", message: "no ticket t6" } }),
    });
    const e3 = (await findMatch({ baseUrl: base, fetch: gone.fetch, game: "arena", pollIntervalMs: 5 }).catch((e: unknown) => e)) as PylonError;
    expect([e3.status, e3.code]).toEqual([404, "TICKET_NOT_FOUND"]);
  });

  it("interpretTicket reads each status", () => {
    expect(interpretTicket("t", { status: "queued" })).toBeNull();
    expect(interpretTicket("t", matched)).toMatchObject({ shardId: "eu-7h3k2" });
    expect((interpretTicket("t", { status: "cancelled" }) as PylonError).code).toBe("TICKET_CANCELLED");
    expect((interpretTicket("t", { status: "matched" }) as PylonError).code).toBe("INVALID_RESPONSE");
    expect((interpretTicket("t", { status: "failed", error: { code: "NO_CAPACITY", message: "full" } }) as PylonError).code).toBe("NO_CAPACITY");
  });
});

describe("pickRegion", () => {
  it("times each region's /health and returns the fastest with the latencies", async () => {
    const regions = [
      { region: "us", url: "https://us.example.com", ws_url: "wss://us.example.com/shard" },
      { region: "eu", url: "https://eu.example.com/", ws_url: "wss://eu.example.com/shard" },
      { region: "ap", url: "https://ap.example.com", ws_url: "wss://ap.example.com/shard" },
    ];
    const delay: Record<string, number> = { "us.example.com": 60, "eu.example.com": 5 };
    const probed: string[] = [];
    const f = (async (input: string | URL) => {
      const url = new URL(String(input));
      if (url.pathname === "/api/regions") return json(200, regions);
      probed.push(url.toString());
      const ms = delay[url.host];
      if (ms === undefined) throw new TypeError("fetch failed");
      await new Promise((r) => setTimeout(r, ms));
      return json(200, { status: "ok" });
    }) as typeof fetch;
    const choice = await pickRegion({ baseUrl: base, fetch: f, probes: 2 });
    expect(choice.region).toBe("eu");
    expect(choice.url).toBe("https://eu.example.com/");
    expect(choice.wsUrl).toBe("wss://eu.example.com/shard");
    expect(Object.keys(choice.latencies).sort()).toEqual(["eu", "us"]);
    expect(choice.latencies.eu!).toBeLessThan(choice.latencies.us!);
    expect(choice.latencies.us!).toBeGreaterThanOrEqual(50);
    expect(probed.filter((u) => u === "https://eu.example.com/health")).toHaveLength(2);
  });

  it("no region answering is NO_REGION", async () => {
    const f = (async (input: string | URL) => {
      if (new URL(String(input)).pathname === "/api/regions") return json(200, [{ region: "x", url: "https://x", ws_url: "" }]);
      throw new TypeError("fetch failed");
    }) as typeof fetch;
    const err = (await pickRegion({ baseUrl: base, fetch: f }).catch((e: unknown) => e)) as PylonError;
    expect(err.code).toBe("NO_REGION");
  });
});

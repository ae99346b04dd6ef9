import { describe, expect, it } from "vitest";
import {
  CloseCode,
  PylonError,
  ResyncRequiredError,
  ShardCloseError,
  closeCodeName,
  isCloseCode,
  isRetryableClose,
  parseErrorBody,
} from "../src/errors.js";
import { stoppedCloseCode } from "../src/shard-core.js";

describe("close codes", () => {
  it("names every code of docs/PROTOCOL.md", () => {
    const table: [number, string][] = [
      [1000, "Normal"],
      [1001, "GoingAway"],
      [1008, "PolicyViolation"],
      [1009, "TooBig"],
      [1011, "InternalError"],
      [1013, "TryAgainLater"],
      [4400, "BadRequest"],
      [4404, "UnknownShard"],
      [4408, "Idle"],
      [4409, "Replaced"],
      [4410, "ResyncRequired"],
      [4421, "WrongRegion"],
      [4429, "RateLimited"],
    ];
    for (const [code, name] of table) {
      expect(closeCodeName(code)).toBe(name);
      expect(isCloseCode(code)).toBe(true);
      expect(CloseCode[name as keyof typeof CloseCode]).toBe(code);
    }
    expect(Object.keys(CloseCode)).toHaveLength(table.length);
    expect(closeCodeName(1006)).toBe("Abnormal");
    expect(closeCodeName(4000)).toBe("Unknown");
    expect(isCloseCode(4000)).toBe(false);
  });

  it("retries what may get better, not what will not", () => {
    const retry = [1001, 1006, 1013, 4408, 4429];
    const final = [1000, 1008, 1009, 1011, 4400, 4404, 4409, 4410, 4421];
    for (const c of retry) expect(isRetryableClose(c), String(c)).toBe(true);
    for (const c of final) expect(isRetryableClose(c), String(c)).toBe(false);
    // 1013 also covers a finished or stopped match, which will not come back.
    expect(isRetryableClose(1013, "shard full")).toBe(true);
    expect(isRetryableClose(1013, "match finished")).toBe(false);
    expect(isRetryableClose(1013, "match stopped: idle")).toBe(false);
  });

  it("ShardCloseError carries code, name, reason and whether to retry", () => {
    const e = new ShardCloseError(4421, "https://eu.example.com");
    expect(e).toBeInstanceOf(PylonError);
    expect(e).toBeInstanceOf(Error);
    expect(e.closeCode).toBe(4421);
    expect(e.closeName).toBe("WrongRegion");
    expect(e.reason).toBe("https://eu.example.com");
    expect(e.code).toBe("CLOSE_4421");
    expect(e.retryable).toBe(false);
    expect(e.message).toContain("WrongRegion");
    expect(new ShardCloseError(4429, "too many inputs per second").retryable).toBe(true);
  });

  it("maps SSE stop codes to the socket's close codes", () => {
    expect(stoppedCloseCode("shutdown").code).toBe(1001);
    expect(stoppedCloseCode("panicked").code).toBe(1011);
    expect(stoppedCloseCode("forbidden").code).toBe(1008);
    expect(stoppedCloseCode("full").code).toBe(1013);
    expect(isRetryableClose(stoppedCloseCode("full").code, stoppedCloseCode("full").reason)).toBe(true);
    expect(isRetryableClose(stoppedCloseCode("stopped").code, stoppedCloseCode("stopped").reason)).toBe(false);
    expect(isRetryableClose(stoppedCloseCode("finished").code, stoppedCloseCode("finished").reason)).toBe(false);
    expect(stoppedCloseCode("gone").code).toBe(1006);
  });
});

describe("HTTP errors", () => {
  it("parses the server's error object", () => {
    const body = '{"error":{"code":"UNKNOWN_GAME","message":"no game named \\"chess\\"","hint":"registered games: arena, tictactoe"}}';
    const e = PylonError.fromBody(400, body);
    expect(e).toBeInstanceOf(PylonError);
    expect([e.status, e.code, e.message, e.hint]).toEqual([400, "UNKNOWN_GAME", 'no game named "chess"', "registered games: arena, tictactoe"]);
  });

  it("keeps extra keys (field, oldest_seq, operation) as details; hint is optional", () => {
    const e = PylonError.fromBody(400, '{"error":{"code":"INVALID_FIELD","message":"Player.level: bad","field":"level"}}');
    expect(e.hint).toBeUndefined();
    expect(e.details).toEqual({ field: "level" });
    expect(parseErrorBody('{"error":{"code":"RESYNC_REQUIRED","message":"m","oldest_seq":12}}')?.details).toEqual({ oldest_seq: 12 });
  });

  it("a body that is not an error object gives HTTP_<status>", () => {
    const e = PylonError.fromBody(502, "<html>Bad Gateway</html>");
    expect([e.status, e.code]).toEqual([502, "HTTP_502"]);
    expect(e.message).toContain("Bad Gateway");
    expect(PylonError.fromBody(500, "").message).toBe("HTTP 500");
    expect(parseErrorBody('{"error":"x"}')).toBeNull();
    expect(parseErrorBody("[]")).toBeNull();
  });

  it("network failures and resyncs are typed", () => {
    const n = PylonError.network(new TypeError("fetch failed"), "GET /health");
    expect([n.status, n.code]).toEqual([0, "NETWORK_ERROR"]);
    expect(n.message).toBe("GET /health: fetch failed");
    const r = new ResyncRequiredError(40);
    expect([r.status, r.code, r.oldestSeq]).toEqual([410, "RESYNC_REQUIRED", 40]);
  });
});

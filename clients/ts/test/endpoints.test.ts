import { describe, expect, it } from "vitest";
import { bearerProtocol, resolveOrigin, shardSocketUrl } from "../src/endpoints.js";

describe("endpoints", () => {
  it("a full base URL: HTTP on it, sockets on its /shard unless wsPort is given", () => {
    expect(resolveOrigin("http://127.0.0.1:4321/").http).toBe("http://127.0.0.1:4321");
    expect(shardSocketUrl("m1", { baseUrl: "https://game.example.com/pylon" }, { sid: "u1" })).toBe(
      "wss://game.example.com/pylon/shard?shard=m1&sid=u1",
    );
    expect(shardSocketUrl("m1", { baseUrl: "http://127.0.0.1:5521", wsPort: 5524 }, { sid: "u1", format: "msgpack", delta: true })).toBe(
      "ws://127.0.0.1:5524/?shard=m1&sid=u1&format=msgpack&delta=1",
    );
    expect(shardSocketUrl("m1", { baseUrl: "http://127.0.0.1:5521", wsPort: 5524 }, { format: "msgpack", delta: 2 })).toBe(
      "ws://127.0.0.1:5524/?shard=m1&format=msgpack&delta=2",
    );
    expect(shardSocketUrl("m1", { baseUrl: "http://127.0.0.1:5521", wsPort: 5524 }, { format: "msgpack", delta: 1 })).toBe(
      "ws://127.0.0.1:5524/?shard=m1&format=msgpack&delta=1",
    );
  });

  it("a bare host name, as pylon's web client takes it: ws://host:4324/", () => {
    expect(shardSocketUrl("m 1", { baseUrl: "game.example.com" }, { sid: "u/1" })).toBe(
      "ws://game.example.com:4324/?shard=m+1&sid=u%2F1",
    );
    expect(resolveOrigin("game.example.com").http).toBe("http://game.example.com:4321");
    expect(resolveOrigin("game.example.com", 5524).http).toBe("http://game.example.com:5521");
    expect(resolveOrigin("localhost:8080").http).toBe("http://localhost:8080");
  });

  it("an explicit wsUrl is kept, with shard and sid added when missing", () => {
    expect(shardSocketUrl("m1", { wsUrl: "ws://eu.example.com:4324/?shard=m1&sid=x" }, { sid: "u1", format: "json" })).toBe(
      "ws://eu.example.com:4324/?shard=m1&sid=x&format=json",
    );
    expect(shardSocketUrl("m1", { wsUrl: "wss://eu.example.com/shard" }, { sid: "u1" })).toBe(
      "wss://eu.example.com/shard?shard=m1&sid=u1",
    );
  });

  it("no base URL outside a browser: localhost defaults", () => {
    expect(resolveOrigin().http).toBe("http://localhost:4321");
    expect(shardSocketUrl("m1", {}, {})).toBe("ws://localhost:4324/?shard=m1");
  });

  it("bearer subprotocol entries are percent-encoded tokens", () => {
    expect(bearerProtocol("abc123")).toBe("bearer.abc123");
    expect(bearerProtocol("a b/c(d)")).toBe("bearer.a%20b%2Fc%28d%29");
    expect(decodeURIComponent(bearerProtocol("x!'()*y").slice(7))).toBe("x!'()*y");
  });
});

import { describe, expect, it } from "vitest";
import { type SseEvent, SseParser } from "../src/sse.js";

function parse(chunks: string[]): SseEvent[] {
  const out: SseEvent[] = [];
  const p = new SseParser((e) => out.push(e));
  for (const c of chunks) p.push(c);
  return out;
}

// What the shard SSE endpoint sends (axum's Sse): id, data, a heartbeat comment, named events.
const stream =
  'id: 3\ndata: {"ack":null,"players":[]}\n\n' +
  ": heartbeat\n\n" +
  'id: 4\ndata: {"ack":1,"players":[]}\n\n' +
  'event: stopped\ndata: {"code":"shutdown"}\n\n';

describe("SseParser", () => {
  it("parses ids, data, named events, and skips comments", () => {
    expect(parse([stream])).toEqual([
      { event: "message", data: '{"ack":null,"players":[]}', id: "3" },
      { event: "message", data: '{"ack":1,"players":[]}', id: "4" },
      { event: "stopped", data: '{"code":"shutdown"}', id: "4" },
    ]);
  });

  it("gives the same events however the stream is cut", () => {
    const whole = parse([stream]);
    for (let i = 1; i < stream.length; i++) {
      expect(parse([stream.slice(0, i), stream.slice(i)])).toEqual(whole);
    }
    expect(parse([...stream])).toEqual(whole);
  });

  it("handles CRLF and CR line ends, multi-line data, and no space after the colon", () => {
    expect(parse(["data:a\r\ndata: b\r\n\r\n", "id:9\rdata:c\r\r"])).toEqual([
      { event: "message", data: "a\nb", id: "" },
      { event: "message", data: "c", id: "9" },
    ]);
    // A CR at a chunk's end followed by LF in the next chunk is one line end.
    expect(parse(["data: x\r", "\n\r", "\n"])).toEqual([{ event: "message", data: "x", id: "" }]);
  });

  it("drops an event without data and an incomplete one at the end, strips a BOM", () => {
    expect(parse(["\uFEFFevent: end\n\n", "data: cut"])).toEqual([]);
  });
});

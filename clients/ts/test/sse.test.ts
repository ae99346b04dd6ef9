import { describe, expect, it } from "vitest";
import { type SseEvent, SseParser, readEventStream } from "../src/sse.js";

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

describe("readEventStream", () => {
  // Node 20's fetch may leave a read pending forever when the abort meets a body the
  // server is just ending; this body never ends and ignores the signal, the same to us.
  const stuck = (text: string) =>
    (async () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new TextEncoder().encode(text));
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      )) as unknown as typeof fetch;

  it("returns when an event handler aborts, even if the body never settles", async () => {
    const ctrl = new AbortController();
    const seen: string[] = [];
    await readEventStream("http://h/e", { signal: ctrl.signal, fetch: stuck("event: matched\ndata: {}\n\n") }, (e) => {
      seen.push(e.event);
      ctrl.abort();
    });
    expect(seen).toEqual(["matched"]);
  });

  it("returns when the signal aborts while a read is pending", async () => {
    const ctrl = new AbortController();
    const seen: string[] = [];
    const done = readEventStream("http://h/e", { signal: ctrl.signal, fetch: stuck("event: queued\ndata: {}\n\n") }, (e) => {
      seen.push(e.event);
    });
    await new Promise((r) => setTimeout(r, 20));
    ctrl.abort();
    await done;
    expect(seen).toEqual(["queued"]);
  });
});

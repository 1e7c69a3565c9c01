import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventStreamParser, EventStreamTooLargeError } from "./event-stream.js";
import type { ServerSentEvent } from "./event-stream.js";

function parse(chunks: readonly (string | Buffer)[]): {
  events: ServerSentEvent[];
  parser: EventStreamParser;
} {
  const events: ServerSentEvent[] = [];
  const parser = new EventStreamParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  return { events, parser };
}

describe("EventStreamParser", () => {
  it("reads data, event types, ids, comments, retry and multi-line data", () => {
    const { events, parser } = parse([
      "\uFEFF: a comment\nretry: 250\n",
      'id: 7\nevent: overheated\ndata: {"t":\ndata:  91}\n\n',
      "data: plain\n\nid\n\n",
    ]);
    expect(events).toEqual([
      { type: "overheated", data: '{"t":\n 91}', lastEventId: "7" },
      { type: "message", data: "plain", lastEventId: "7" },
    ]);
    expect(parser.lastEventId).toBe("");
    expect(parser.retryMs).toBe(250);
  });
  it("accepts CR, LF and CRLF line endings, a CRLF split across chunks, and UTF-8 split across chunks", () => {
    const bytes = Buffer.from("data: é\r", "utf8");
    const { events } = parse([bytes.subarray(0, 7), bytes.subarray(7), "\n\rdata: b\r\r", "data: c\n\n"]);
    expect(events.map((e) => e.data)).toEqual(["é", "b", "c"]);
  });
  it("drops an event the stream ended in the middle of", () => {
    const { events, parser } = parse(["data: whole\n\ndata: half"]);
    parser.end();
    expect(events.map((e) => e.data)).toEqual(["whole"]);
  });
  it("ignores an id holding NUL and a retry that is not a number", () => {
    const { parser } = parse(["id: 3\n\nid: a\0b\nretry: soon\n\n"]);
    expect(parser.lastEventId).toBe("3");
    expect(parser.retryMs).toBeUndefined();
  });
  it("refuses an event larger than its bound, and not a stream of small ones", () => {
    const parser = new EventStreamParser(() => undefined, 64);
    for (let i = 0; i < 100; i++) parser.push(`: heartbeat\ndata: ${"x".repeat(40)}\n\n`);
    expect(() => parser.push(`data: ${"x".repeat(40)}\ndata: ${"x".repeat(40)}\n`)).toThrow(
      EventStreamTooLargeError,
    );
  });
  it("yields the same events however the stream is cut into chunks", () => {
    const text = fc.stringMatching(/^[^\r\n]*$/);
    const event = fc.record({
      type: fc.constantFrom("", "a", "b"),
      data: fc.array(text, { minLength: 1, maxLength: 3 }),
      id: fc.option(fc.stringMatching(/^[a-z0-9]{1,4}$/)),
    });
    const ending = fc.constantFrom("\n", "\r", "\r\n");
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 6 }),
        ending,
        fc.array(fc.nat(), { maxLength: 8 }),
        (list, eol, cuts) => {
          let stream = "";
          for (const e of list) {
            if (e.id !== null) stream += `id: ${e.id}${eol}`;
            if (e.type !== "") stream += `event: ${e.type}${eol}`;
            for (const line of e.data) stream += `data: ${line}${eol}`;
            stream += eol;
          }
          const bytes = Buffer.from(stream, "utf8");
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let from = 0;
          for (const point of points) {
            chunks.push(bytes.subarray(from, point));
            from = point;
          }
          chunks.push(bytes.subarray(from));
          const whole = parse([bytes]).events;
          expect(parse(chunks).events).toEqual(whole);
          expect(whole.map((e) => e.data)).toEqual(list.map((e) => e.data.join("\n")));
          expect(whole.map((e) => e.type)).toEqual(list.map((e) => (e.type === "" ? "message" : e.type)));
        },
      ),
    );
  });
});

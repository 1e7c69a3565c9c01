import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventStreamParser, readEventStream, type ServerSentEvent } from "./server-sent-events.js";

function parseAll(chunks: string[]): { events: ServerSentEvent[]; parser: EventStreamParser } {
  const parser = new EventStreamParser();
  const events = chunks.flatMap((chunk) => parser.push(chunk));
  return { events, parser };
}

describe("EventStreamParser", () => {
  it("dispatches on a blank line, with the event name, joined data lines and the last id", () => {
    const { events } = parseAll(['id: 7\nevent: change\ndata: {"a":\ndata: 1}\n\n']);
    expect(events).toEqual([{ event: "change", data: '{"a":\n1}', id: "7" }]);
  });

  it("ignores comments and unknown fields, keeps the id across events and reads retry", () => {
    const { events, parser } = parseAll([
      ": keep-alive\n\nretry: 2000\nid: 3\ndata: x\n\nfoo: bar\ndata: y\n\n",
    ]);
    expect(events).toEqual([
      { event: "message", data: "x", id: "3" },
      { event: "message", data: "y", id: "3" },
    ]);
    expect(parser.retry).toBe(2000);
    expect(parser.lastEventId).toBe("3");
  });

  it("takes CRLF, CR and LF line ends, a CRLF split across chunks, and drops a leading BOM", () => {
    const { events } = parseAll(["\uFEFFdata: a\r", "\n\r", "\ndata: b\r\rdata:c\n\n"]);
    expect(events).toEqual([
      { event: "message", data: "a", id: "" },
      { event: "message", data: "b", id: "" },
      { event: "message", data: "c", id: "" },
    ]);
  });

  it("does not dispatch an event with no data, and ignores an id holding NUL", () => {
    const { events, parser } = parseAll(["id: 1\n\nid: a\u0000b\nevent: x\n\n"]);
    expect(events).toEqual([]);
    expect(parser.lastEventId).toBe("1");
  });

  it("gives the same events however the stream is cut into chunks", () => {
    const stream =
      "retry: 10\r\nid: 1\nevent: change\ndata: one\r\n\r\n: c\n\rid: 2\rdata: two\ndata:  three\n\n";
    const whole = parseAll([stream]).events;
    expect(whole).toHaveLength(2);
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 8 }), (cuts) => {
        const points = [0, ...[...cuts].sort((a, b) => a - b), stream.length];
        const chunks = points.slice(1).map((end, i) => stream.slice(points[i], end));
        expect(parseAll(chunks).events).toEqual(whole);
      }),
    );
  });

  it("reads a fetch body's bytes, a UTF-8 character split across chunks included, and drops an unfinished event", async () => {
    const bytes = new TextEncoder().encode("id: 1\ndata: café\n\ndata: unfinished\n");
    const split = bytes.indexOf(0xa9); // the second byte of é
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, split));
        controller.enqueue(bytes.slice(split));
        controller.close();
      },
    });
    const events: ServerSentEvent[] = [];
    for await (const event of readEventStream(body)) events.push(event);
    expect(events).toEqual([{ event: "message", data: "café", id: "1" }]);
  });
});

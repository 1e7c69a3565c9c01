// Parsing a text/event-stream (WHATWG HTML §9.2.6, "Interpreting an event stream") from the
// chunks of a fetch body, in Node.js and browsers alike.

/** One dispatched event. */
export interface ServerSentEvent {
  /** The `event` field, `message` when the event named none. */
  event: string;
  /** The `data` lines, joined by line feeds. */
  data: string;
  /** The last event id the stream set (an `id` field persists across events), "" if none yet. */
  id: string;
}

/**
 * An incremental parser: `push` text as it arrives, get back the events it completes. Keeps the
 * last event id and the `retry` time the server asked for across events.
 */
export class EventStreamParser {
  /** The last `id` field seen (the spec's "last event ID buffer"). */
  lastEventId = "";
  /** The reconnection time the server asked for with `retry:`, in milliseconds. */
  retry: number | undefined;
  #partial = "";
  #pendingCr = false;
  #first = true;
  #event = "";
  #data: string[] = [];

  /** Parses the next piece of the stream (already decoded text); returns the events it ends. */
  push(text: string): ServerSentEvent[] {
    let chunk = text;
    if (chunk.length === 0) return [];
    if (this.#first) {
      this.#first = false;
      if (chunk.startsWith("\uFEFF")) chunk = chunk.slice(1);
    }
    // A CR that ended the previous chunk already ended its line: skip the LF of its CRLF.
    if (this.#pendingCr && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.#pendingCr = false;
    const events: ServerSentEvent[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 0x0a && c !== 0x0d) continue;
      const line = this.#partial + chunk.slice(start, i);
      this.#partial = "";
      if (c === 0x0d) {
        if (i + 1 === chunk.length) this.#pendingCr = true;
        else if (chunk.charCodeAt(i + 1) === 0x0a) i++;
      }
      start = i + 1;
      const event = this.#line(line);
      if (event !== undefined) events.push(event);
    }
    this.#partial += chunk.slice(start);
    return events;
  }

  #line(line: string): ServerSentEvent | undefined {
    if (line === "") return this.#dispatch();
    if (line.startsWith(":")) return undefined;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\u0000")) this.lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
      // Unknown fields are ignored.
    }
    return undefined;
  }

  #dispatch(): ServerSentEvent | undefined {
    const data = this.#data;
    const event = this.#event;
    this.#data = [];
    this.#event = "";
    if (data.length === 0) return undefined;
    return { event: event === "" ? "message" : event, data: data.join("\n"), id: this.lastEventId };
  }
}

/** The events of a response body, as they arrive; an incomplete last event is dropped (per the spec). */
export async function* readEventStream(
  body: ReadableStream<Uint8Array>,
  parser: EventStreamParser = new EventStreamParser(),
): AsyncGenerator<ServerSentEvent, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder("utf-8");
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode());
  } finally {
    // Stops the download when the consumer stops early (break, abort).
    await reader.cancel().catch(() => undefined);
  }
}

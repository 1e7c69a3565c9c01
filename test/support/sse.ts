// A Server-Sent Events reader for end-to-end tests of the hub's streams (/events, /changes/stream).
import type { TestHub } from "./test-hub.js";

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** The longest a test waits for events it expects before it fails. */
export const STREAM_BOUND_MS = 10_000;

/**
 * A Server-Sent Events reader over fetch (HTML Living Standard §9.2.6, "Interpreting an event
 * stream"), bounded by an AbortController: it fails rather than hang.
 */
export class EventStream {
  private buffer = "";
  private readonly ready: SseEvent[] = [];
  private data: string[] = [];
  private eventType = "";
  private lastEventId: string | undefined;
  private done = false;
  private readonly decoder = new TextDecoder();

  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly controller: AbortController,
  ) {}

  static async open(
    hub: TestHub,
    path: string,
    headers: Record<string, string> = {},
    boundMs = STREAM_BOUND_MS,
  ): Promise<EventStream> {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(boundMs)]);
    const response = await hub.request(path, {
      headers: { accept: "text/event-stream", ...headers },
      signal,
    });
    if (!response.body) throw new Error(`${path} answered ${response.status} without a body`);
    return new EventStream(response, response.body.getReader(), controller);
  }

  /** The next event, or undefined when the server ended the stream. */
  async next(): Promise<SseEvent | undefined> {
    while (this.ready.length === 0 && !this.done) {
      const { value, done } = await this.reader.read();
      if (done) {
        this.done = true;
        break;
      }
      this.feed(this.decoder.decode(value, { stream: true }));
    }
    return this.ready.shift();
  }

  /** Exactly the next `n` events; fails if the stream ends first. */
  async take(n: number): Promise<SseEvent[]> {
    const events: SseEvent[] = [];
    while (events.length < n) {
      const event = await this.next();
      if (!event) throw new Error(`the stream ended after ${events.length} of ${n} events`);
      events.push(event);
    }
    return events;
  }

  close(): void {
    this.controller.abort();
  }

  private feed(text: string): void {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? "";
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) {
        this.ready.push({
          id: this.lastEventId,
          event: this.eventType || "message",
          data: this.data.join("\n"),
        });
      }
      this.data = [];
      this.eventType = "";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.eventType = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
  }
}

/** The first event's `data` of an SSE answer (that `match` takes), parsed as JSON; the answer is then cancelled. */
export async function firstData(
  response: Response,
  match: (data: unknown) => boolean = () => true,
): Promise<unknown> {
  const decoder = new TextDecoder();
  let text = "";
  let read = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    // Each whole `data:` line once, in order.
    const lines = /^data: (.*)$/gm;
    lines.lastIndex = read;
    for (
      let line = lines.exec(text);
      line && text.indexOf("\n", line.index) !== -1;
      line = lines.exec(text)
    ) {
      read = lines.lastIndex;
      const data = JSON.parse(line[1] as string) as unknown;
      if (match(data)) {
        await response.body?.cancel().catch(() => undefined);
        return data;
      }
    }
  }
  throw new Error(`the change stream ended: ${text}`);
}

// A parser for `text/event-stream` (HTML Living Standard §9.2.6, "Interpreting an event stream"),
// fed chunk by chunk as they arrive, with a bound on the size of one event.
import { StringDecoder } from "node:string_decoder";

export interface ServerSentEvent {
  /** `event:`, "message" when the event names none. */
  readonly type: string;
  readonly data: string;
  /** The stream's last event ID when this event was dispatched ("" for none). */
  readonly lastEventId: string;
}

export class EventStreamTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`an event of the stream exceeds ${limit} bytes`);
    this.name = "EventStreamTooLargeError";
  }
}

export class EventStreamParser {
  /** The last event ID of the stream, sent back as `Last-Event-ID` when reconnecting. */
  lastEventId = "";
  /** The reconnection time the server asked for with `retry:`, in ms. */
  retryMs: number | undefined;

  readonly #onEvent: (event: ServerSentEvent) => void;
  /** Characters, a bound no lower than the bytes they came from. */
  readonly #maxEventChars: number;
  readonly #decoder = new StringDecoder("utf8");
  #line = "";
  #afterCr = false;
  #started = false;
  #data = "";
  #type = "";
  #idBuffer = "";

  constructor(onEvent: (event: ServerSentEvent) => void, maxEventBytes = 1024 * 1024) {
    this.#onEvent = onEvent;
    this.#maxEventChars = maxEventBytes;
  }

  /** Feeds bytes; throws EventStreamTooLargeError when an event outgrows the bound. */
  push(chunk: Buffer | string): void {
    let text = typeof chunk === "string" ? chunk : this.#decoder.write(chunk);
    if (!this.#started && text.length > 0) {
      this.#started = true;
      if (text.startsWith("\uFEFF")) text = text.slice(1);
    }
    let from = 0;
    for (let i = 0; i < text.length; i++) {
      const char = text.charCodeAt(i);
      if (char !== 10 && char !== 13) continue;
      // A CR LF pair split across two chunks is one line ending.
      if (char === 10 && this.#afterCr && i === from && this.#line === "") {
        this.#afterCr = false;
        from = i + 1;
        continue;
      }
      this.#appendToLine(text.slice(from, i));
      this.#processLine(this.#line);
      this.#line = "";
      this.#afterCr = char === 13;
      if (char === 13 && text.charCodeAt(i + 1) === 10) {
        i++;
        this.#afterCr = false;
      }
      from = i + 1;
    }
    if (from < text.length) {
      this.#afterCr = false;
      this.#appendToLine(text.slice(from));
    }
  }

  /** The stream ended: an event not yet terminated by a blank line is dropped (§9.2.6). */
  end(): void {
    this.#decoder.end();
    this.#line = "";
    this.#data = "";
    this.#type = "";
  }

  #appendToLine(part: string): void {
    this.#line += part;
    if (this.#line.length + this.#data.length > this.#maxEventChars) {
      throw new EventStreamTooLargeError(this.#maxEventChars);
    }
  }

  #processLine(line: string): void {
    if (line === "") {
      this.#dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#type = value;
        break;
      case "data":
        this.#data += `${value}\n`;
        break;
      case "id":
        if (!value.includes("\0")) this.#idBuffer = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break;
    }
  }

  #dispatch(): void {
    this.lastEventId = this.#idBuffer;
    if (this.#data === "") {
      this.#type = "";
      return;
    }
    const event: ServerSentEvent = {
      type: this.#type === "" ? "message" : this.#type,
      data: this.#data.slice(0, -1),
      lastEventId: this.lastEventId,
    };
    this.#data = "";
    this.#type = "";
    this.#onEvent(event);
  }
}

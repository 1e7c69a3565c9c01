import { describe, expect, it } from "vitest";
import { BoundedQueue } from "./change-queue.js";

describe("BoundedQueue", () => {
  it("hands pushed items over in order, to a consumer waiting or not", async () => {
    const queue = new BoundedQueue<number>(
      10,
      () => {},
      () => {},
    );
    const waiting = queue.next();
    queue.push(1);
    queue.push(2);
    queue.push(3);
    expect(await waiting).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    expect(await queue.next()).toEqual({ value: 3, done: false });
  });

  it("overflows once when a push finds it full, then ends and drops what it held", async () => {
    let overflows = 0;
    let ends = 0;
    const queue = new BoundedQueue<number>(
      2,
      () => overflows++,
      () => ends++,
    );
    for (let i = 0; i < 5; i++) queue.push(i);
    expect(overflows).toBe(1);
    expect(ends).toBe(1);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it("ends a consumer that waits when it is returned, and tells its owner once", async () => {
    let ends = 0;
    const queue = new BoundedQueue<number>(
      2,
      () => {},
      () => ends++,
    );
    const waiting = queue.next();
    await queue.return();
    await queue.return();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(ends).toBe(1);
  });

  it("resolves below(level) once the consumer has taken enough", async () => {
    const queue = new BoundedQueue<number>(
      10,
      () => {},
      () => {},
    );
    for (let i = 0; i < 4; i++) queue.push(i);
    let drained = false;
    const below = queue.below(1).then(() => (drained = true));
    await queue.next();
    await queue.next();
    await Promise.resolve();
    expect(drained).toBe(false);
    await queue.next();
    await below;
    expect(queue.size).toBe(1);
  });

  it("finishes after handing over what it holds, taking nothing more", async () => {
    let ends = 0;
    const queue = new BoundedQueue<number>(
      10,
      () => {},
      () => ends++,
    );
    queue.push(1);
    queue.push(2);
    queue.finish();
    queue.push(3);
    expect(ends).toBe(0);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    expect(ends).toBe(1);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    const empty = new BoundedQueue<number>(
      10,
      () => {},
      () => ends++,
    );
    const waiting = empty.next();
    empty.finish();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(ends).toBe(2);
  });
});

// How the gateway groups device reports into ingest calls: per Thing and turn, in arrival order,
// a bad report taken out and answered alone, failures that are not the device's left unacked.
import { describe, expect, it } from "vitest";
import { NotFoundError, UnavailableError, ValidationError, type Cause } from "../../core/index.js";
import type { Report } from "../../hub/index.js";
import { ReportBatches } from "./report-batches.js";

interface Call {
  thing: string;
  values: unknown[];
  cause: Cause;
}

/** An ingest that checks like the hub's (every report first, pointers `/{index}/…`) and records calls. */
function recordingIngest(options: { unknown?: string; failing?: boolean } = {}) {
  const calls: Call[] = [];
  const committed: unknown[] = [];
  const release: (() => void)[] = [];
  const ingest = async (thing: string, reports: Report[], cause: Cause) => {
    calls.push({ thing, values: reports.map((r) => r.value), cause });
    if (thing === options.unknown) throw new NotFoundError(`No Thing with id ${thing}`);
    reports.forEach((report, index) => {
      if (report.value === "bad") {
        throw new ValidationError("The value for value does not fit its schema: the value must be number", [
          { pointer: `/${index}/value`, message: "must be number" },
        ]);
      }
    });
    if (options.failing === true) throw new UnavailableError("Too many writes are waiting; retry shortly");
    // The commit ends when the test says so.
    await new Promise<void>((resolve) => release.push(resolve));
    committed.push(...reports.map((r) => r.value));
  };
  const commitAll = () => release.splice(0).forEach((resolve) => resolve());
  return { ingest, calls, committed, commitAll };
}

const reported = (value: unknown): Report => ({ kind: "reported", affordance: "value", value });

/** Resolves once `calls` has `n` entries (the batches start on the next turn). */
async function callsReach(calls: Call[], n: number): Promise<void> {
  while (calls.length < n) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe("ReportBatches", () => {
  it("hands the reports of one turn for one Thing to ingest in one call, in arrival order, with the publisher as actor", async () => {
    const { ingest, calls, commitAll } = recordingIngest();
    const batches = new ReportBatches(ingest);
    const taken = [1, 2, 3].map((v) => batches.take("urn:a", "device:a", reported(v), () => undefined));
    const other = batches.take("urn:b", "device:b", reported(9), () => undefined);
    await callsReach(calls, 2);
    commitAll();
    await Promise.all([...taken, other]);
    expect(calls).toEqual([
      { thing: "urn:a", values: [1, 2, 3], cause: { actor: "device:a", via: "mqtt" } },
      { thing: "urn:b", values: [9], cause: { actor: "device:b", via: "mqtt" } },
    ]);
  });

  it("settles a report only after its call committed, and sends a Thing's next reports together once it has", async () => {
    const { ingest, calls, committed, commitAll } = recordingIngest();
    const batches = new ReportBatches(ingest);
    let settled = 0;
    const first = batches.take("urn:a", "d", reported(1), () => undefined).then(() => settled++);
    await callsReach(calls, 1);
    const later = [2, 3].map((v) => batches.take("urn:a", "d", reported(v), () => undefined));
    // Wait two turns: the second call must not start while the first commits.
    for (let i = 0; i < 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(calls.map((c) => c.values)).toEqual([[1]]);
    expect(settled).toBe(0);
    commitAll();
    await first;
    await callsReach(calls, 2);
    commitAll();
    await Promise.all(later);
    expect(calls.map((c) => c.values)).toEqual([[1], [2, 3]]);
    expect(committed).toEqual([1, 2, 3]);
  });

  it("takes out a report that does not fit, answers it as if it came alone, and commits the others", async () => {
    const { ingest, calls, committed, commitAll } = recordingIngest();
    const batches = new ReportBatches(ingest);
    const refused: unknown[] = [];
    const taken = [1, "bad", 3].map((v) =>
      batches.take("urn:a", "d", reported(v), (error) => refused.push(error)),
    );
    await callsReach(calls, 2);
    commitAll();
    await Promise.all(taken);
    expect(calls.map((c) => c.values)).toEqual([
      [1, "bad", 3],
      [1, 3],
    ]);
    expect(committed).toEqual([1, 3]);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(ValidationError);
    expect((refused[0] as ValidationError).errors).toEqual([
      { pointer: "/0/value", message: "must be number" },
    ]);
  });

  it("refuses every report about an unknown Thing, in one call, and acknowledges them", async () => {
    const { ingest, calls } = recordingIngest({ unknown: "urn:nobody" });
    const batches = new ReportBatches(ingest);
    const refused: unknown[] = [];
    await Promise.all(
      [1, 2].map((v) => batches.take("urn:nobody", "d", reported(v), (error) => refused.push(error))),
    );
    expect(calls).toHaveLength(1);
    expect(refused.map((e) => (e as Error).constructor.name)).toEqual(["NotFoundError", "NotFoundError"]);
  });

  it("rejects every report of a call that failed for a reason not the device's, so none is acknowledged", async () => {
    const { ingest } = recordingIngest({ failing: true });
    const batches = new ReportBatches(ingest);
    const refused: unknown[] = [];
    const outcomes = await Promise.allSettled(
      [1, 2].map((v) => batches.take("urn:a", "d", reported(v), (error) => refused.push(error))),
    );
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    expect(refused).toHaveLength(2);
  });
});

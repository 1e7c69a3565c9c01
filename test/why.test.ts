// Why a Change happened, end to end on every surface — GET /changes/{seq}/why, GraphQL's
// Change.why and `things why SEQ` (the built CLI as a child process) — against a real hub on port
// 0 whose Log holds a write, the value read back after it, a value the Thing took alone and a
// release's revert; the HTTP answers on a PostgreSQL store too. `npm test` builds dist/ first;
// otherwise run `npm run build`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HubClient } from "../src/client/index.js";
import type { ThingDescription } from "../src/core/index.js";
import type { Why } from "../src/hub/index.js";
import {
  describeWithPostgres,
  dropSchema,
  postgresProblem,
  storeUrl,
  temporarySchema,
} from "./support/postgres.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const THERMOSTAT = "urn:test:meeting-room-thermostat";

interface Problem {
  status: number;
  detail: string;
  errors?: Array<{ pointer: string; detail: string }>;
}

/**
 * Records the Log the tests read on `hub`: a write, the value read back after it and again, a
 * value the Thing took alone, and a release's revert the Thing refused. The seqs, by name.
 */
async function recordScenario(hub: TestHub): Promise<Record<string, number>> {
  const seq: Record<string, number> = {};
  const forms = [{ href: "https://thermostat.example/setpoint" }];
  await new HubClient({ url: hub.url, token: hub.token }).put(
    minimalTd({ id: THERMOSTAT, properties: { setpoint: { type: "number", forms } } }) as ThingDescription,
  );
  const observer = { actor: "hub:observer", via: "http" };
  const record = async (name: string, report: object, cause: object) => {
    const [change] = await hub.hub.ingest(THERMOSTAT, [report as never], cause as never);
    seq[name] = change?.seq ?? 0;
  };
  const alice = { actor: "alice", via: "http", correlation: "c-1" };
  await record("first", { kind: "reported", affordance: "setpoint", value: 21 }, observer);
  await record("write", { kind: "desired", affordance: "setpoint", value: 30 }, alice);
  await record("done", { kind: "completed", affordance: "setpoint" }, alice);
  await record("readBack", { kind: "reported", affordance: "setpoint", value: 30 }, observer);
  // The observer reporting the same value again (a restart, a poll): no new cause.
  await record("repeat", { kind: "reported", affordance: "setpoint", value: 30 }, observer);
  // A value no write asked for: someone turned the dial on the wall.
  await record("alone", { kind: "reported", affordance: "setpoint", value: 26 }, observer);
  const revert = {
    actor: "hub:drift",
    via: "drift",
    release: "sha256:abc",
    rule: "revert",
    correlation: "c-2",
  };
  await record("revert", { kind: "desired", affordance: "setpoint", value: 21 }, revert);
  await record("refused", { kind: "failed", affordance: "setpoint", value: { reason: "busy" } }, revert);
  return seq;
}

/** GET /changes/{seq}/why, answered 200. */
async function whyOverHttp(hub: TestHub, at: number): Promise<Why> {
  const res = await hub.request(`/changes/${at}/why`);
  expect(res.status).toBe(200);
  return (await res.json()) as Why;
}

/** The chain as [relation, seq] pairs. */
const links = (why: Why) => why.chain.map((link) => [link.relation, link.change.seq]);

/** Each named Change's chain ([relation, seq] pairs) and origin, as the scenario makes them. */
function expectedChains(
  seq: Record<string, number>,
): Record<string, { chain: unknown[]; origin: string | RegExp }> {
  const toWrite = [
    ["the write that asked for this value", seq.write],
    ["its outcome", seq.done],
  ];
  return {
    first: {
      chain: [],
      origin: /^the Thing itself: nothing the hub sent asked for 21 since it was first reported/,
    },
    write: { chain: [["its outcome", seq.done]], origin: "alice via http" },
    done: { chain: [["the command it ends", seq.write]], origin: "alice via http" },
    readBack: { chain: toWrite, origin: "alice via http" },
    repeat: {
      chain: [["the same value, reported before", seq.readBack], ...toWrite],
      origin: "alice via http",
    },
    alone: {
      chain: [],
      origin: `the Thing itself: nothing the hub sent asked for 26 since the report before it (seq ${seq.repeat}) (changed on the device, or by a path the hub does not see)`,
    },
    revert: {
      chain: [["its outcome", seq.refused]],
      origin: "hub:drift (rule revert) for release sha256:abc",
    },
    refused: {
      chain: [["the command it ends", seq.revert]],
      origin: "hub:drift (rule revert) for release sha256:abc",
    },
  };
}

/** Asks GET /changes/{seq}/why of every named Change and holds each answer to expectedChains. */
async function expectEveryChain(hub: TestHub, seq: Record<string, number>): Promise<void> {
  for (const [name, want] of Object.entries(expectedChains(seq))) {
    const why = await whyOverHttp(hub, seq[name] ?? 0);
    expect(why.change.seq, name).toBe(seq[name]);
    expect(links(why), name).toEqual(want.chain);
    if (typeof want.origin === "string") expect(why.origin, name).toBe(want.origin);
    else expect(why.origin, name).toMatch(want.origin);
  }
}

describe("why a Change happened", () => {
  let hub: TestHub;
  /** The seqs of the Changes below, by name. */
  let seq: Record<string, number> = {};

  beforeAll(async () => {
    hub = await startTestHub();
    seq = await recordScenario(hub);
  });

  afterAll(async () => {
    await hub.stop();
  });

  it("GET /changes/{seq}/why answers every Change's chain and origin", async () => {
    await expectEveryChain(hub, seq);
  });

  it("GET /changes/{seq}/why follows a read-back value to its write, its outcome and who sent it", async () => {
    const why = await whyOverHttp(hub, seq.readBack ?? 0);
    expect(why.change).toMatchObject({ seq: seq.readBack, kind: "reported", value: 30 });
    expect(links(why)).toEqual([
      ["the write that asked for this value", seq.write],
      ["its outcome", seq.done],
    ]);
    expect(why.chain[0]?.change).toMatchObject({ kind: "desired", value: 30, cause: { actor: "alice" } });
    expect(why.origin).toBe("alice via http");
  });

  it("GET /changes/{seq}/why refuses a seq that is not a whole number from 1, or past the Log's end (400, /params/seq)", async () => {
    const end = await hub.hub.store.lastSeq();
    for (const bad of ["0", "-1", "abc", "1.5", "01", String(end + 1)]) {
      const res = await hub.request(`/changes/${bad}/why`);
      expect(res.status, bad).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as Problem;
      expect(
        problem.errors?.map((e) => e.pointer),
        bad,
      ).toEqual(["/params/seq"]);
      expect(problem.detail, bad).toBe(
        bad === String(end + 1)
          ? `seq ${end + 1} is past the end of the Log (${end} Changes)`
          : "Invalid params: params/seq must be a whole number from 1 (a Change's position in the Log)",
      );
    }
    expect(await hub.hub.store.lastSeq()).toBe(end);
  });

  it("GET /changes/{seq}/why is in the OpenAPI document, its seq a whole number from 1", async () => {
    const doc = (await (await hub.request("/openapi.json")).json()) as {
      paths: Record<string, { get?: { parameters?: Array<{ name: string; schema: unknown }> } }>;
    };
    const route = doc.paths["/changes/{seq}/why"]?.get;
    expect(route?.parameters?.find((p) => p.name === "seq")?.schema).toMatchObject({
      type: "string",
      pattern: "^[1-9][0-9]*$",
    });
  });

  /** One GraphQL query over HTTP: its data and its errors' codes and messages. */
  const graphql = async (query: string) => {
    const res = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query }),
    });
    return (await res.json()) as {
      data?: Record<string, unknown>;
      errors?: Array<{ message: string; extensions?: { code?: string } }>;
    };
  };
  const WHY = "why { origin chain { relation change { seq kind value cause { actor } } } }";

  it("GraphQL's Change.why answers the chain GET /changes/{seq}/why does", async () => {
    for (const name of ["readBack", "repeat", "alone", "refused", "write"]) {
      const at = seq[name] ?? 0;
      const { data, errors } = await graphql(`{ change(seq: ${at}) { seq ${WHY} } }`);
      expect(errors, name).toBeUndefined();
      const http = await whyOverHttp(hub, at);
      expect(data?.change, name).toEqual({
        seq: at,
        why: {
          origin: http.origin,
          chain: http.chain.map((link) => ({
            relation: link.relation,
            change: {
              seq: link.change.seq,
              kind: link.change.kind,
              value: link.change.value ?? null,
              cause: { actor: link.change.cause.actor },
            },
          })),
        },
      });
    }
  });

  it("GraphQL's Change.why works on a page of a Thing's history, and costs its reads", async () => {
    const { data, errors } = await graphql(
      `{ history(thing: "${THERMOSTAT}", kinds: ["reported"], first: 2) { changes { seq why { origin } } } }`,
    );
    expect(errors).toBeUndefined();
    const page = data?.history as { changes: Array<{ seq: number; why: { origin: string } }> };
    expect(page.changes.map((c) => c.seq)).toEqual([seq.alone, seq.repeat]);
    expect(page.changes[0]?.why.origin).toMatch(/^the Thing itself: /);
    expect(page.changes[1]?.why.origin).toBe("alice via http");
    // A why per Change of a page of 1000 is 100,000 over the default cost limit: refused, not run.
    const costly = await graphql(`
      {
        changes(first: 1000) {
          changes {
            why {
              origin
            }
          }
        }
      }
    `);
    expect(costly.errors?.map((e) => e.extensions?.code)).toEqual(["COST_LIMIT_EXCEEDED"]);
  });

  it("GraphQL refuses a seq below 1 for change(seq:) { why }, and answers null past the Log's end", async () => {
    const refused = await graphql(`{ change(seq: 0) { ${WHY} } }`);
    expect(refused.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([
      ["BAD_USER_INPUT", "seq 0 is not a whole number from 1"],
    ]);
    const end = await hub.hub.store.lastSeq();
    expect(await graphql(`{ change(seq: ${end + 1}) { ${WHY} } }`)).toEqual({ data: { change: null } });
  });

  const why = (...args: string[]) =>
    runThingsToEnd(["why", ...args, "--url", hub.url], { env: { TZ: "UTC" } });

  it("follows a value the Thing reported back to the write that asked for it, and to who sent it", async () => {
    const run = await why(String(seq.readBack));
    expect(run).toMatchObject({ code: 0, stderr: "" });
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(
      new RegExp(`^seq ${seq.readBack}  ${THERMOSTAT} setpoint reported 30 \\(.*, by hub:observer\\)$`),
    );
    expect(lines[2]).toMatch(
      new RegExp(`^← the write that asked for this value: seq ${seq.write}  .* desired 30 .*by alice\\)$`),
    );
    expect(lines[3]).toBe("  cause: alice via http, correlation c-1");
    expect(lines[4]).toMatch(new RegExp(`^← its outcome: seq ${seq.done}  .* completed `));
    expect(lines.at(-1)).toBe("origin: alice via http");
    const json = JSON.parse((await why(String(seq.readBack), "--json")).stdout) as {
      chain: Array<{ change: { seq: number } }>;
    };
    expect(json.chain.map((link) => link.change.seq)).toEqual([seq.write, seq.done]);
  }, 60_000);

  it("things why --json prints the hub's answer to GET /changes/{seq}/why", async () => {
    const run = await why(String(seq.refused), "--json");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual(await whyOverHttp(hub, seq.refused ?? 0));
  });

  it("says a value no write asked for since the last report came from the Thing itself", async () => {
    const run = await why(String(seq.alone));
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd().split("\n").at(-1)).toBe(
      `origin: the Thing itself: nothing the hub sent asked for 26 since the report before it (seq ${seq.repeat}) (changed on the device, or by a path the hub does not see)`,
    );
  });

  it("follows a value reported again, unchanged, back to what first set it", async () => {
    const run = await why(String(seq.repeat), "--json");
    expect(run.code).toBe(0);
    const json = JSON.parse(run.stdout) as {
      chain: Array<{ relation: string; change: { seq: number } }>;
      origin: string;
    };
    expect(json.chain.map((link) => [link.relation, link.change.seq])).toEqual([
      ["the same value, reported before", seq.readBack],
      ["the write that asked for this value", seq.write],
      ["its outcome", seq.done],
    ]);
    expect(json.origin).toBe("alice via http");
  });

  it("goes from an outcome to its command, and names a release's rule", async () => {
    const run = await why(String(seq.refused));
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines[2]).toMatch(new RegExp(`^← the command it ends: seq ${seq.revert}  .* desired 21 `));
    expect(lines.at(-1)).toBe("origin: hub:drift (rule revert) for release sha256:abc");
  });

  it("a seq past the Log's end is one line and exit code 1", async () => {
    const run = await why("9999");
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr.trimEnd().split("\n")).toHaveLength(1);
  });
});

describeWithPostgres("why a Change happened, on PostgreSQL", await postgresProblem(), () => {
  const schema = temporarySchema();
  let hub: TestHub;
  let seq: Record<string, number> = {};

  beforeAll(async () => {
    hub = await startTestHub({ store: storeUrl(schema) });
    seq = await recordScenario(hub);
  });

  afterAll(async () => {
    await hub?.stop();
    await dropSchema(schema);
  });

  it("GET /changes/{seq}/why answers every Change's chain and origin as on SQLite", async () => {
    await expectEveryChain(hub, seq);
  });
});

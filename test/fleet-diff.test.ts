// What changed anywhere between two times, end to end: `GET /diff` and `things diff` without an id,
// against a real hub on SQLite and on PostgreSQL, with an injected clock so every time is exact.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { dropSchema, postgresProblem, storeUrl, temporarySchema } from "./support/postgres.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd, type ThingsRun } from "./support/things-process.js";

const MINUTE = 60_000;
const FORMS = [{ href: "http://fleet.example/p" }];
const LAMP = "urn:test:fleet:lamp";
const SENSOR = "urn:test:fleet:sensor";
const QUIET = "urn:test:fleet:quiet";

interface ThingDiff {
  thing: string;
  from: string;
  to: string;
  fromSeq: number;
  toSeq: number;
  properties: Array<{ affordance: string; before?: unknown; after?: unknown; changes: number }>;
  description?: unknown;
  descriptionChanges?: unknown;
  [section: string]: unknown;
}

interface FleetDiff {
  from: string;
  to: string;
  fromSeq: number;
  toSeq: number;
  things: ThingDiff[];
  next?: number;
}

interface Problem {
  status: number;
  detail: string;
  errors?: Array<{ pointer: string }>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function td(id: string, type: string, properties: string[]): Record<string, unknown> {
  return minimalTd({
    id,
    "@type": type,
    title: id,
    properties: Object.fromEntries(properties.map((name) => [name, { type: "number", forms: FORMS }])),
  });
}

async function put(hub: TestHub, body: Record<string, unknown>): Promise<void> {
  const res = await hub.request(thingPath(body.id as string), {
    method: "PUT",
    headers: { "content-type": "application/td+json" },
    body: JSON.stringify(body),
  });
  expect([201, 204], await res.text()).toContain(res.status);
}

async function report(hub: TestHub, id: string, affordance: string, value: number): Promise<void> {
  const res = await hub.request(`${thingPath(id)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind: "reported", affordance, value }),
  });
  expect(res.status, await res.text()).toBe(201);
}

async function getJson<T>(hub: TestHub, path: string, status = 200): Promise<{ body: T; res: Response }> {
  const res = await hub.request(path);
  const body = (await res.json()) as T;
  expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(status);
  return { body, res };
}

function things(hub: TestHub, args: string[]): Promise<ThingsRun> {
  return runThingsToEnd([...args, "--url", hub.url, "--token", hub.token], { env: { TZ: "UTC" } });
}

const problem = await postgresProblem();
const stores = [
  { name: "SQLite", schema: undefined },
  ...(problem === undefined ? [{ name: "PostgreSQL", schema: temporarySchema() }] : []),
];

describe.each(stores)("the diff of every Thing on $name", ({ schema }) => {
  // In the past, as the CLI (which reads its times by the wall clock) sees it.
  let now = Date.parse("2026-05-06T02:00:00.000Z");
  let hub: TestHub;
  /** t1: the lamp and the sensor report; t2: the sensor, then the lamp; t3: the lamp is re-described. */
  const t = { registered: 0, one: 0, sensor: 0, two: 0, three: 0 };
  const advance = (ms: number): number => (now += ms);

  beforeAll(async () => {
    hub = await startTestHub(
      schema === undefined ? {} : { store: storeUrl(schema) },
      {},
      {
        clock: () => new Date(now),
      },
    );
    t.registered = advance(MINUTE);
    await put(hub, td(LAMP, "saref:LightSwitch", ["brightness", "on"]));
    await put(hub, td(SENSOR, "saref:Sensor", ["temperature"]));
    await put(hub, td(QUIET, "saref:Sensor", ["temperature"]));
    await report(hub, QUIET, "temperature", 5);
    t.one = advance(MINUTE);
    await report(hub, LAMP, "brightness", 10);
    t.sensor = advance(1000);
    await report(hub, SENSOR, "temperature", 20);
    t.two = advance(MINUTE);
    await report(hub, SENSOR, "temperature", 21);
    await report(hub, LAMP, "brightness", 30);
    await report(hub, LAMP, "on", 1);
    t.three = advance(MINUTE);
    await put(hub, { ...td(LAMP, "saref:LightSwitch", ["brightness", "on"]), title: "Desk lamp" });
    advance(MINUTE);
  });
  afterAll(async () => {
    await hub?.stop();
    if (schema !== undefined) await dropSchema(schema);
  });

  const range = (from: number, to: number) => `from=${iso(from)}&to=${iso(to)}`;

  it("gives each Thing that changed its own diff, in the order of its first Change in between, and leaves out the quiet one", async () => {
    const from = t.one - 1;
    const to = t.two;
    const { body } = await getJson<FleetDiff>(hub, `/diff?${range(from, to)}`);
    expect(body.things.map((d) => d.thing)).toEqual([LAMP, SENSOR]);
    expect(body.next).toBeUndefined();
    expect(body).toMatchObject({ from: iso(from), to: iso(to) });
    for (const diff of body.things) {
      const { body: one } = await getJson<ThingDiff>(hub, `${thingPath(diff.thing)}/diff?${range(from, to)}`);
      expect(diff).toEqual(one);
    }
    const [lamp] = body.things;
    expect(lamp?.properties).toEqual([
      expect.objectContaining({ affordance: "brightness", after: 30, changes: 2 }),
      expect.objectContaining({ affordance: "on", after: 1, changes: 1 }),
    ]);
  });

  it("pages by Things: a Thing that changed again after a page's end is not shown twice", async () => {
    const query = range(t.one - 1, t.three);
    const first = await getJson<FleetDiff>(hub, `/diff?${query}&limit=1`);
    expect(first.body.things.map((d) => d.thing)).toEqual([LAMP]);
    expect(first.body.next).toBeTypeOf("number");
    const link = first.res.headers.get("link") ?? "";
    expect(link).toMatch(/; rel="next"$/);
    const path = /^<([^>]+)>/.exec(link)?.[1] ?? "";
    const second = await getJson<FleetDiff>(hub, path);
    expect(second.body.things.map((d) => d.thing)).toEqual([SENSOR]);
    expect(second.body.next).toBeUndefined();
    const whole = await getJson<FleetDiff>(hub, `/diff?${query}`);
    expect([...first.body.things, ...second.body.things]).toEqual(whole.body.things);
  });

  it("takes the feed's filters: an affordance narrows each diff to it; a kind, a type or a Thing picks the Things", async () => {
    const query = range(t.registered - 1, t.three);
    const byAffordance = await getJson<FleetDiff>(hub, `/diff?${query}&affordance=temperature`);
    expect(byAffordance.body.things.map((d) => d.thing)).toEqual([QUIET, SENSOR]);
    for (const diff of byAffordance.body.things) {
      expect(diff.properties.map((p) => p.affordance)).toEqual(["temperature"]);
      expect(diff.description).toBeUndefined();
      expect(diff.descriptionChanges).toBeUndefined();
    }
    const described = await getJson<FleetDiff>(hub, `/diff?${range(t.two, t.three)}&kind=described`);
    expect(described.body.things.map((d) => d.thing)).toEqual([LAMP]);
    expect(described.body.things[0]?.description).toEqual({ title: "Desk lamp" });
    const sensors = await getJson<FleetDiff>(hub, `/diff?${query}&type=saref:Sensor`);
    expect(sensors.body.things.map((d) => d.thing)).toEqual([SENSOR, QUIET]);
    const one = await getJson<FleetDiff>(hub, `/diff?${query}&thing=${encodeURIComponent(QUIET)}`);
    expect(one.body.things.map((d) => d.thing)).toEqual([QUIET]);
    const nobody = await getJson<FleetDiff>(hub, `/diff?${query}&actor=nobody`);
    expect(nobody.body.things).toEqual([]);
  });

  it("answers the same over GraphQL (diffs), a page at a time", async () => {
    const query = /* GraphQL */ `
      query ($from: String!, $to: String, $after: SafeInt, $filter: ChangeFilter) {
        diffs(from: $from, to: $to, first: 1, after: $after, filter: $filter) {
          from
          to
          fromSeq
          toSeq
          next
          things {
            thing
            properties {
              affordance
              before
              after
              changes
            }
          }
        }
      }
    `;
    const ask = async (variables: Record<string, unknown>) => {
      const res = await hub.request("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query, variables }),
      });
      const answer = (await res.json()) as { data?: { diffs: FleetDiff }; errors?: unknown };
      expect(answer.errors, JSON.stringify(answer.errors)).toBeUndefined();
      return answer.data?.diffs as FleetDiff;
    };
    const first = await ask({ from: iso(t.one - 1), to: iso(t.three) });
    expect(first.things.map((d) => d.thing)).toEqual([LAMP]);
    const second = await ask({ from: first.from, to: first.to, after: first.next });
    expect(second.things.map((d) => d.thing)).toEqual([SENSOR]);
    expect(second.next).toBeNull();
    const http = await getJson<FleetDiff>(hub, `/diff?${range(t.one - 1, t.three)}`);
    expect(second.things[0]?.properties).toEqual(
      http.body.things[1]?.properties.map(({ affordance, before, after, changes }) => ({
        affordance,
        before: before ?? null,
        after,
        changes,
      })),
    );
    const typed = await ask({ from: iso(t.registered - 1), filter: { type: "saref:LightSwitch" } });
    expect(typed.things.map((d) => d.thing)).toEqual([LAMP]);
  });

  it("refuses bad input with a problem naming the parameter", async () => {
    const cases: Array<[string, string]> = [
      [`/diff?from=${iso(t.two)}&to=${iso(t.one)}`, "/query/from"],
      ["/diff?from=half%20past%20nine", "/query/from"],
      ["/diff", "/query/from"],
      [`/diff?${range(t.one, t.two)}&limit=101`, "/query/limit"],
      [`/diff?${range(t.one, t.two)}&kind=reprted`, "/query/kind"],
      [`/diff?${range(t.one, t.two)}&thing=not%20an%20iri`, "/query/thing"],
      [`/diff?${range(t.one, t.two)}&cursor=1`, "/query/cursor"],
    ];
    for (const [path, pointer] of cases) {
      const { body } = await getJson<Problem>(hub, path, 400);
      expect(
        body.errors?.map((e) => e.pointer),
        `${path}: ${body.detail}`,
      ).toContain(pointer);
    }
  });

  it("things diff without an id prints each Thing's diff, and --json the hub's answer", async () => {
    const args = ["diff", "--from", iso(t.one - 1), "--to", iso(t.two)];
    const run = await things(hub, args);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^2 Things changed from 2026-05-06 02:01:59\.999 \(seq \d+\) to 2026-05-06 02:03:01\.000/,
    );
    expect(run.stdout).toContain(`\n${LAMP}  from `);
    expect(run.stdout).toContain(`\n${SENSOR}  from `);
    expect(run.stdout).not.toContain(QUIET);
    expect(run.stdout).toMatch(
      /\n {2}brightness {2}\(none\) → 30 {2}\(2 changes, last by admin at 2026-05-06 02:03:01\.000\)\n/,
    );
    const json = await things(hub, [...args, "--json"]);
    expect(json.code).toBe(0);
    const { body } = await getJson<FleetDiff>(hub, `/diff?${range(t.one - 1, t.two)}`);
    expect(JSON.parse(json.stdout)).toEqual(body);
  });

  it("things diff --limit says on stderr how to go on, and --cursor goes on", async () => {
    const args = ["diff", "--from", iso(t.one - 1), "--to", iso(t.three)];
    const first = await things(hub, [...args, "--limit", "1", "--json"]);
    expect(first.code).toBe(0);
    const page = JSON.parse(first.stdout) as FleetDiff;
    expect(page.things.map((d) => d.thing)).toEqual([LAMP]);
    const hint =
      /^more Things may have changed after seq (\d+): the same command with --cursor (\d+) --from (\S+) --to (\S+)\n$/.exec(
        first.stderr,
      );
    expect(hint, first.stderr).not.toBeNull();
    const rest = await things(hub, [...args, "--cursor", hint?.[2] ?? "", "--json"]);
    expect(rest).toMatchObject({ code: 0, stderr: "" });
    expect((JSON.parse(rest.stdout) as FleetDiff).things.map((d) => d.thing)).toEqual([SENSOR]);
  });

  it("things diff without an id says when nothing changed, and why when a filter names nothing", async () => {
    const quiet = await things(hub, ["diff", "--from", iso(t.three + 1), "--to", iso(t.three + 2)]);
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toBe("");
    expect(quiet.stderr).toMatch(/^no Thing changed between 2026-05-06 02:04:01\.001 \(seq \d+\) and /);
    const typo = await things(hub, ["diff", "--from", iso(t.registered), "--affordance", "temprature"]);
    expect(typo.code).toBe(0);
    expect(typo.stderr).toMatch(
      /: no Thing declares a property, action or event "temprature" \(did you mean temperature\?\)\n$/,
    );
  });

  it("things diff refuses bad input in one line, exit 2", async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ["diff", "--from", iso(t.two), "--to", iso(t.one)],
        /^things: --from \(\S+\) is after --to \(\S+\)\n$/,
      ],
      [["diff", "--from", "half past nine"], /^things: "half past nine" is not a time: .*\n$/],
      [
        ["diff", LAMP, "--from", iso(t.one), "--type", "saref:Sensor"],
        /^things: --type is for the diff of every Thing: leave out the id urn:test:fleet:lamp, or that option\n$/,
      ],
      [["diff", "--from", iso(t.one), "--limit", "0"], /^things: .*--limit.*\n$/],
    ];
    for (const [args, line] of cases) {
      const run = await things(hub, args);
      expect(run.stderr, args.join(" ")).toMatch(line);
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stdout).toBe("");
    }
  });
});

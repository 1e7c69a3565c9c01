// `things query` end to end: the built CLI against a real hub's /graphql.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd, type ThingsRun } from "./support/things-process.js";

const LAMP = "urn:test:gql-cli-lamp";

function things(args: string[]): Promise<ThingsRun> {
  return runThingsToEnd(args);
}

describe("things query", () => {
  let hub: TestHub;
  let connection: string[];

  beforeAll(async () => {
    hub = await startTestHub();
    connection = ["--url", hub.url, "--token", hub.token];
    const put = await hub.request(`/things/${encodeURIComponent(LAMP)}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(minimalTd({ id: LAMP, title: "CLI lamp" })),
    });
    expect(put.status).toBe(201);
  });
  afterAll(async () => hub.stop());

  it("prints the data of a query as JSON, with variables from --var", async () => {
    const run = await things([
      "query",
      "query ($id: ID!) { thing(id: $id) { id title } }",
      "--var",
      `id=${LAMP}`,
      ...connection,
    ]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ thing: { id: LAMP, title: "CLI lamp" } });
  });

  it("runs a mutation, recorded with the token's actor", async () => {
    const run = await things([
      "query",
      "mutation ($id: ID!, $patch: JSON!) { update(id: $id, patch: $patch) { change { cause { actor via } } } }",
      "--var",
      `id=${LAMP}`,
      "--var",
      'patch={"title":"Renamed"}',
      "--compact",
      ...connection,
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('{"update":{"change":{"cause":{"actor":"admin","via":"graphql"}}}}\n');
  });

  it("reports the hub's errors as one line with their codes, and exits 1", async () => {
    const run = await things(["query", `{ thing(id: "${LAMP}") { colour } }`, ...connection]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toMatch(/^things: .*colour.*\(GRAPHQL_VALIDATION_FAILED\)\n$/);
  });

  it("says, for a mutation refused for want of a token, how to give one, as the other commands do", async () => {
    const run = await things([
      "query",
      `mutation { update(id: "${LAMP}", patch: {title: "x"}) { change { seq } } }`,
      "--url",
      hub.url,
    ]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      "things: Commands (mutations) require a bearer token (UNAUTHENTICATED); give a token with --token or " +
        "HYPERTHINGS_TOKEN: none was given (the CLI reads an admin-token file only for the hub at " +
        "http://127.0.0.1:8080; this one printed its token at its first start, and keeps it in its data " +
        "directory's admin-token)\n",
    );
  });

  it("refuses a --var that is not name=value as usage (exit 2)", async () => {
    const run = await things(["query", "{ log { size } }", "--var", "=x", ...connection]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^things: .*name=value/);
  });

  it("watch with a filter the hub refuses says so in the hub's words, exit 1, before it watches", async () => {
    const run = await things(["watch", "--kind", "reported,bogus", ...connection]);
    expect(run).toMatchObject({ code: 1, stdout: "" });
    expect(run.stderr).toMatch(
      /^things: No Change is of kind "bogus": the kinds this hub records are [a-z, ]+\n$/,
    );
  });

  it("says a hub that is not running is not running, as the other commands do", async () => {
    const stopped = await startTestHub();
    await stopped.stop();
    for (const args of [["query", "{ log { size } }"], ["watch"]]) {
      const run = await things([...args, "--url", stopped.url]);
      expect(run.code).toBe(1);
      expect(run.stderr).toBe(
        `things: cannot reach the hub at ${stopped.url}/graphql: connection refused — is \`things serve\` running?\n`,
      );
    }
  });
});

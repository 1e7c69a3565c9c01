// Releases through GraphQL at /graphql against a real hub: storeRelease (idempotent, validated
// like POST /releases), releases, release and plan.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildRelease, type Plan, type Release } from "../src/core/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

interface Answer {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

async function gql(hub: TestHub, query: string, variables?: Record<string, unknown>): Promise<Answer> {
  const response = await hub.request("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, ...(variables && { variables }) }),
  });
  return (await response.json()) as Answer;
}

const MANIFEST = `release: gql-evening
things:
  - select: { id: "urn:example:gql:dimmer" }
    properties: { brightness: 40 }
`;

describe("releases over GraphQL", () => {
  let hub: TestHub;
  let release: Release;

  beforeAll(async () => {
    hub = await startTestHub();
    const td = minimalTd({
      id: "urn:example:gql:dimmer",
      base: "http://127.0.0.1:9/",
      properties: { brightness: { type: "integer", minimum: 0, maximum: 100, forms: [{ href: "b" }] } },
    });
    const res = await hub.request(`/things/${encodeURIComponent("urn:example:gql:dimmer")}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(td),
    });
    expect(res.status).toBe(201);
    release = buildRelease([{ path: "gql.yaml", text: MANIFEST }], {
      builder: "test",
      builtAt: "2026-11-25T00:00:00.000Z",
    });
  });

  afterAll(async () => {
    await hub.stop();
  });

  it("stores a release once, lists it, reads it and plans it", async () => {
    const store = `mutation($d: JSON!) { storeRelease(document: $d) { id created } }`;
    const first = await gql(hub, store, { d: release });
    expect(first.errors).toBeUndefined();
    expect(first.data?.storeRelease).toEqual({ id: release.id, created: true });
    const again = await gql(hub, store, { d: release });
    expect(again.data?.storeRelease).toEqual({ id: release.id, created: false });

    const answer = await gql(
      hub,
      `query($id: ID!) {
        releases(first: 10) { releases { id name drift steps } next }
        release(id: $id)
        plan(release: $id)
      }`,
      { id: release.id },
    );
    expect(answer.errors).toBeUndefined();
    expect(answer.data?.releases).toEqual({
      releases: [{ id: release.id, name: "gql-evening", drift: "record", steps: 1 }],
      next: null,
    });
    expect((answer.data?.release as Release).steps).toEqual(release.steps);
    const plan = answer.data?.plan as Plan;
    expect(plan.things[0]?.items[0]).toMatchObject({ name: "brightness", desired: 40, status: "change" });
  });

  it("refuses a document naming an unknown Thing with the manifest's place, and answers null for an unknown id", async () => {
    const ghost = buildRelease([{ path: "ghost.yaml", text: MANIFEST.replace("gql:dimmer", "gql:ghost") }], {
      builder: "test",
      builtAt: "2026-11-25T00:00:00.000Z",
    });
    const refused = await gql(hub, `mutation($d: JSON!) { storeRelease(document: $d) { id } }`, { d: ghost });
    expect(refused.errors?.[0]?.message).toMatch(
      /ghost\.yaml:3:5: no Thing urn:example:gql:ghost is registered/,
    );
    const missing = await gql(hub, `{ release(id: "sha256:${"0".repeat(64)}") }`);
    expect(missing.data?.release).toBeNull();
  });

  it("stores a release that supersedes a stored one, and refuses one superseding an unknown id", async () => {
    const store = `mutation($d: JSON!) { storeRelease(document: $d) { id created } }`;
    await gql(hub, store, { d: release });
    const options = { builder: "test", builtAt: "2026-11-25T00:00:00.000Z" };
    const next = buildRelease(
      [{ path: "next.yaml", text: `supersedes: ${release.id}\n${MANIFEST.replace("40", "30")}` }],
      options,
    );
    expect(next.supersedes).toBe(release.id);
    expect((await gql(hub, store, { d: next })).data?.storeRelease).toEqual({ id: next.id, created: true });
    const listed = await gql(hub, `{ releases(name: "gql-evening") { releases { id supersedes } } }`);
    expect((listed.data?.releases as { releases: unknown[] }).releases[0]).toEqual({
      id: next.id,
      supersedes: release.id,
    });
    const orphan = buildRelease(
      [{ path: "orphan.yaml", text: `supersedes: sha256:${"1".repeat(64)}\n${MANIFEST}` }],
      options,
    );
    const refused = await gql(hub, store, { d: orphan });
    expect(refused.errors?.[0]?.message).toMatch(/no release sha256:1{64} is stored/);
  });

  it("refuses a filter selector that does not parse, at the manifest's line, when the release is stored", async () => {
    const bad = buildRelease(
      [
        {
          path: "bad-filter.yaml",
          text: "release: bad-filter\nthings:\n  - select: { filter: 'td.title = ' }\n    properties: { a: 1 }\n",
        },
      ],
      { builder: "test", builtAt: "2026-11-25T00:00:00.000Z" },
    );
    const refused = await gql(hub, `mutation($d: JSON!) { storeRelease(document: $d) { id } }`, { d: bad });
    expect(refused.errors?.[0]?.message).toMatch(/bad-filter\.yaml:3:5: Bad graph filter/);
  });
});

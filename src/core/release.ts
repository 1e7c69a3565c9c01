// The release: an immutable, content-addressed bundle of desired state (docs/releases.md), and
// its plan — per Thing, what a rollout would change, what is already in place, what it cannot do.
import { canonicalJson, contentHash } from "./canonical-json.js";
import { compileDataSchema } from "./data-schema-validation.js";
import type { ThingDescription } from "./thing-description.js";
import { isIriReference } from "./thing-description-validation.js";

/** The format tag of a release document; a new tag if its meaning ever changes. */
export const RELEASE_FORMAT = "hyperthings.release/1";

/** What follows when a Thing drifts from its active release (`record` is the default). */
export type DriftPolicy = "record" | "alert" | "revert";

/** `revert` corrects at most `maxReverts` times per Thing and affordance within `withinSeconds`. */
export interface RevertLimits {
  maxReverts: number;
  withinSeconds: number;
}

export interface DriftSettings {
  policy: DriftPolicy;
  /** Only with `policy: revert`; defaults are `DEFAULT_REVERT_LIMITS`. */
  revert?: RevertLimits;
}

export const DEFAULT_REVERT_LIMITS: RevertLimits = { maxReverts: 3, withinSeconds: 3600 };

/** Which Things a step applies to: one by id, or all a graph filter matches at plan time. */
export type ThingSelector = { id: string } | { filter: string };

/** An action to invoke once per Thing and release, with its input when it takes one. */
export interface ReleaseAction {
  name: string;
  input?: unknown;
}

/** A TD link to add to the selected Thing (`rel` and the target, usually another Thing's id). */
export interface ReleaseLink {
  rel: string;
  href: string;
}

/** One resolved step: templates and includes are already expanded. */
export interface ReleaseStep {
  select: ThingSelector;
  /** Desired property values, by property name. */
  properties?: Record<string, unknown>;
  /** Actions to invoke once, in this order. */
  actions?: ReleaseAction[];
  links?: ReleaseLink[];
}

/** Where one step came from: the place an error about it points at. */
export interface StepSource {
  file: string;
  line: number;
  column: number;
  /** The template instance the step was expanded from (`use` path, e.g. `kitchen/lamp`). */
  template?: string;
}

export interface ReleaseProvenance {
  /** Every file the build read, with the SHA-256 (hex) of its bytes. */
  sources: { path: string; sha256: string }[];
  /** Who built it: the tool and version, and the user and host when known. */
  builder: string;
  /** When it was built (RFC 3339). */
  builtAt: string;
  /** One entry per step, same order: where each step was written. */
  steps?: StepSource[];
}

/** The part of a release that its id covers. */
export interface ReleaseBody {
  format: typeof RELEASE_FORMAT;
  name: string;
  /** The id of the release this one replaces, when it names one. */
  supersedes?: string;
  drift: DriftSettings;
  steps: ReleaseStep[];
}

/** A release as stored: immutable, its id the hash of its body. */
export interface Release extends ReleaseBody {
  /** `sha256:<hex>` of the RFC 8785 canonical JSON of the body (provenance excluded). */
  id: string;
  provenance: ReleaseProvenance;
}

/** The summary `GET /releases` lists. */
export interface ReleaseSummary {
  id: string;
  name: string;
  supersedes?: string;
  drift: DriftPolicy;
  steps: number;
  builtAt: string;
  builder: string;
  /** When the hub stored it (RFC 3339). */
  storedAt: string;
}

/** Drift settings as a release holds them: `revert` limits spelled out for `revert`, none otherwise. */
function driftBody(drift: DriftSettings): DriftSettings {
  if (drift.policy !== "revert") return { policy: drift.policy };
  return {
    policy: "revert",
    revert: {
      maxReverts: drift.revert?.maxReverts ?? DEFAULT_REVERT_LIMITS.maxReverts,
      withinSeconds: drift.revert?.withinSeconds ?? DEFAULT_REVERT_LIMITS.withinSeconds,
    },
  };
}

/** A step without the members that say nothing (no properties, no actions, no links). */
function stepBody(step: ReleaseStep): ReleaseStep {
  const properties = step.properties !== undefined && Object.keys(step.properties).length > 0;
  return {
    select: step.select,
    ...(properties && { properties: step.properties }),
    ...(step.actions !== undefined && step.actions.length > 0 && { actions: step.actions }),
    ...(step.links !== undefined && step.links.length > 0 && { links: step.links }),
  };
}

/**
 * Keeps only the members the id covers, in one shape for one meaning: what goes without saying
 * (a default, an empty list) is written the way a build writes it, so a document that spells it
 * out or leaves it out has the same id (absent stays absent).
 */
export function releaseBody(release: ReleaseBody): ReleaseBody {
  return {
    format: release.format,
    name: release.name,
    ...(release.supersedes !== undefined && { supersedes: release.supersedes }),
    drift: driftBody(release.drift),
    steps: release.steps.map(stepBody),
  };
}

/** The release id: `sha256:` over the canonical JSON of the body. */
export function releaseId(release: ReleaseBody): string {
  return contentHash(releaseBody(release));
}

/**
 * The id a document had before bodies were brought to one shape: the hash of the body as it was
 * sent. A release stored then keeps that id; the same document sent again finds it there.
 */
export function documentReleaseId(release: ReleaseBody): string {
  return contentHash({
    format: release.format,
    name: release.name,
    ...(release.supersedes !== undefined && { supersedes: release.supersedes }),
    drift: release.drift,
    steps: release.steps,
  });
}

/** Builds the stored form of a body: the id computed, the provenance attached. */
export function sealRelease(body: ReleaseBody, provenance: ReleaseProvenance): Release {
  const clean = releaseBody(body);
  return { id: releaseId(clean), ...clean, provenance };
}

export function selectorText(select: ThingSelector): string {
  return "id" in select ? `id ${select.id}` : `filter ${select.filter}`;
}

// ---------------------------------------------------------------------------------------------
// Plan

export type PlanStatus = "change" | "in-place" | "cannot";

export type CannotReason =
  "read-only" | "unreachable" | "schema-mismatch" | "unknown-affordance" | "conflict";

export interface PlanItem {
  kind: "property" | "action" | "link";
  /** The property or action name; for a link, `rel href`. */
  name: string;
  /** The property's latest reported value (absent when never reported); a link's presence. */
  observed?: unknown;
  /** The desired value, the action's input, or the link. */
  desired?: unknown;
  status: PlanStatus;
  reason?: CannotReason;
  /** What a person needs to know about `cannot` (the schema's complaint, the conflicting value). */
  detail?: string;
  /** The index of the release step this item comes from. */
  step: number;
}

export interface ThingPlan {
  thing: string;
  title?: string;
  reachable: boolean;
  items: PlanItem[];
}

/** A selector that matched no Thing: the plan cannot be applied. */
export interface PlanProblem {
  step: number;
  select: ThingSelector;
  message: string;
  source?: StepSource;
}

export interface PlanSummary {
  things: number;
  change: number;
  inPlace: number;
  cannot: number;
}

export interface Plan {
  release: string;
  name: string;
  things: ThingPlan[];
  problems: PlanProblem[];
  summary: PlanSummary;
}

/** What the planner knows of one Thing. */
export interface PlanThing {
  id: string;
  td: ThingDescription;
  /** The latest reported value of each property. */
  state: Record<string, unknown>;
  /** False when the Thing's bindings cannot reach it now (or it has none). */
  reachable: boolean;
  /** Affordance keys (`actions/<name>`, `properties/<name>`) this release already applied. */
  applied?: readonly string[];
}

export interface PlanOptions {
  /**
   * The Thing ids each filter step matched, by step index (filters are resolved by the caller
   * against the graph). A filter step without an entry matches nothing.
   */
  matches?: ReadonlyMap<number, readonly string[]>;
  /**
   * Plan only these Things (e.g. `--select`); the caller may leave the others out of `things`.
   * A selector is then judged only within this set: one naming Things outside it is no problem.
   */
  only?: ReadonlySet<string>;
}

function formatProblems(errors: { pointer: string; message: string }[]): string {
  return errors.map((e) => `${e.pointer || "/"} ${e.message}`).join("; ");
}

/** A Thing's own affordance by name: a name like `constructor` or `__proto__` is no affordance. */
function ownAffordance<T>(affordances: Record<string, T> | undefined, name: string): T | undefined {
  return affordances !== undefined && Object.hasOwn(affordances, name) ? affordances[name] : undefined;
}

function linkPresent(td: ThingDescription, link: ReleaseLink): boolean {
  return (td.links ?? []).some((l) => l.href === link.href && (l.rel ?? "") === link.rel);
}

/**
 * What the earlier steps of a release already plan on one Thing: each property's value, each
 * action's input (`""`: none), each link (`rel href`). The same again is one item, not two.
 */
interface PlannedOnThing {
  properties: Map<string, string>;
  actions: Map<string, string>;
  links: Set<string>;
}

/** Plans one step's properties, actions and links on one Thing. */
function planStep(step: ReleaseStep, index: number, thing: PlanThing, planned: PlannedOnThing): PlanItem[] {
  const items: PlanItem[] = [];
  const applied = new Set(thing.applied ?? []);
  for (const [name, desired] of Object.entries(step.properties ?? {})) {
    const base = { kind: "property" as const, name, desired, step: index };
    const observed = Object.hasOwn(thing.state, name) ? { observed: thing.state[name] } : {};
    const affordance = ownAffordance(thing.td.properties, name);
    const text = canonicalJson(desired);
    const earlier = planned.properties.get(name);
    if (earlier !== undefined && earlier !== text) {
      items.push({
        ...base,
        ...observed,
        status: "cannot",
        reason: "conflict",
        detail: `another step wants ${earlier}`,
      });
      continue;
    }
    // Another step wants the same value: it is written once.
    if (earlier !== undefined) continue;
    planned.properties.set(name, text);
    if (!affordance) {
      items.push({ ...base, status: "cannot", reason: "unknown-affordance", detail: `no property ${name}` });
      continue;
    }
    const problems = compileDataSchema(affordance)(desired);
    if (problems.length > 0) {
      items.push({
        ...base,
        ...observed,
        status: "cannot",
        reason: "schema-mismatch",
        detail: formatProblems(problems),
      });
      continue;
    }
    if ("observed" in observed && canonicalJson(observed.observed) === text) {
      items.push({ ...base, ...observed, status: "in-place" });
      continue;
    }
    if (affordance.readOnly === true) {
      items.push({
        ...base,
        ...observed,
        status: "cannot",
        reason: "read-only",
        detail: `property ${name} is read-only`,
      });
      continue;
    }
    if (!thing.reachable) {
      items.push({ ...base, ...observed, status: "cannot", reason: "unreachable" });
      continue;
    }
    items.push({ ...base, ...observed, status: "change" });
  }
  for (const action of step.actions ?? []) {
    const base = {
      kind: "action" as const,
      name: action.name,
      ...(action.input !== undefined && { desired: action.input }),
      step: index,
    };
    // An action is invoked once per Thing and release: asked for again, with the same input it
    // is that one invocation; with another, the release contradicts itself.
    const input = action.input === undefined ? "" : canonicalJson(action.input);
    const earlier = planned.actions.get(action.name);
    if (earlier !== undefined) {
      if (earlier !== input) {
        items.push({
          ...base,
          status: "cannot",
          reason: "conflict",
          detail: `another step invokes it ${earlier === "" ? "without input" : `with ${earlier}`}, and an action is invoked once per Thing and release`,
        });
      }
      continue;
    }
    planned.actions.set(action.name, input);
    const affordance = ownAffordance(thing.td.actions, action.name);
    if (!affordance) {
      items.push({
        ...base,
        status: "cannot",
        reason: "unknown-affordance",
        detail: `no action ${action.name}`,
      });
      continue;
    }
    if (affordance.input !== undefined || action.input !== undefined) {
      const problems = affordance.input ? compileDataSchema(affordance.input)(action.input) : [];
      if (!affordance.input && action.input !== undefined)
        problems.push({ pointer: "", message: "action takes no input" });
      if (problems.length > 0) {
        items.push({
          ...base,
          status: "cannot",
          reason: "schema-mismatch",
          detail: formatProblems(problems),
        });
        continue;
      }
    }
    if (applied.has(`actions/${action.name}`)) {
      items.push({ ...base, status: "in-place", detail: "already invoked by this release" });
      continue;
    }
    if (!thing.reachable) {
      items.push({ ...base, status: "cannot", reason: "unreachable" });
      continue;
    }
    items.push({ ...base, status: "change" });
  }
  for (const link of step.links ?? []) {
    if (planned.links.has(`${link.rel} ${link.href}`)) continue;
    planned.links.add(`${link.rel} ${link.href}`);
    const present = linkPresent(thing.td, link);
    const base = {
      kind: "link" as const,
      name: `${link.rel} ${link.href}`,
      observed: present,
      desired: link,
    };
    if (!isIriReference(link.href)) {
      // The TD could not hold it: adding it would fail at rollout, after the step's other items.
      items.push({
        ...base,
        status: "cannot",
        reason: "schema-mismatch",
        detail: 'href must be an IRI reference (RFC 3987): no spaces, no <>"|\\^` and a % only in %XX',
        step: index,
      });
      continue;
    }
    // Links live in the TD the hub keeps: adding one needs no device, so never `unreachable`.
    items.push({ ...base, status: present ? "in-place" : "change", step: index });
  }
  return items;
}

/**
 * Plans a release against what the hub knows now. Pure: the caller resolves filters and gathers
 * each Thing's TD, state and reachability.
 */
export function planRelease(release: Release, things: readonly PlanThing[], options: PlanOptions = {}): Plan {
  const byId = new Map(things.map((t) => [t.id, t]));
  const problems: PlanProblem[] = [];
  const plans = new Map<string, { plan: ThingPlan; planned: PlannedOnThing }>();
  release.steps.forEach((step, index) => {
    const source = release.provenance.steps?.[index];
    const ids = "id" in step.select ? [step.select.id] : (options.matches?.get(index) ?? []);
    const matched = ids.filter((id) => byId.has(id));
    // A narrowed plan (`only`) says nothing of the Things outside it.
    const outside = options.only ? ids.some((id) => !options.only?.has(id)) : false;
    if (matched.length === 0 && !outside) {
      problems.push({
        step: index,
        select: step.select,
        message: `the selector (${selectorText(step.select)}) matches no Thing`,
        ...(source && { source }),
      });
      return;
    }
    for (const id of matched) {
      if (options.only && !options.only.has(id)) continue;
      const thing = byId.get(id);
      if (!thing) continue;
      let entry = plans.get(id);
      if (!entry) {
        entry = {
          plan: {
            thing: id,
            ...(thing.td.title && { title: thing.td.title }),
            reachable: thing.reachable,
            items: [],
          },
          planned: { properties: new Map(), actions: new Map(), links: new Set() },
        };
        plans.set(id, entry);
      }
      entry.plan.items.push(...planStep(step, index, thing, entry.planned));
    }
  });
  const ordered = [...plans.values()]
    .map((e) => e.plan)
    .sort((a, b) => (a.thing < b.thing ? -1 : a.thing > b.thing ? 1 : 0));
  const summary: PlanSummary = { things: ordered.length, change: 0, inPlace: 0, cannot: 0 };
  for (const plan of ordered) {
    for (const item of plan.items) {
      if (item.status === "change") summary.change++;
      else if (item.status === "in-place") summary.inPlace++;
      else summary.cannot++;
    }
  }
  return { release: release.id, name: release.name, things: ordered, problems, summary };
}

/** True when a rollout may start: every selector matched and nothing is `cannot`. */
export function planApplicable(plan: Plan): boolean {
  return plan.problems.length === 0 && plan.summary.cannot === 0;
}

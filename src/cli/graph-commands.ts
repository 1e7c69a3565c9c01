// `things link|unlink|find|graph`: edit a Thing's links, query the graph with a filter
// (docs/queries.md), and print a Thing's neighbourhood as a tree — over the hub's HTTP API.
import type { Command } from "commander";
import { HubClient } from "../client/index.js";
import { compactIri } from "../core/index.js";
import type { GraphLink, GraphPage, NeighbourhoodNode } from "../hub/index.js";
// graph.js, not the hub's index, which would load the whole hub on every `things` command.
import { MAX_NEIGHBOURHOOD_DEPTH } from "../hub/graph.js";
import { connectionHelpWith, connectionOf, talking } from "./client-commands.js";
import { wholeNumber } from "./whole-number.js";
import { CliError } from "./cli-error.js";
import { formatTable } from "./table.js";

const EXIT_CODES = "0 done, 1 failed (the hub refused, e.g. a bad filter, or is unreachable), 2 usage";
/** How many Things `find` shows unless told. */
const DEFAULT_FIND_LIMIT = 100;
/** The most Things asked of the hub in one page. */
const MAX_PAGE = 1000;

/** `--depth`: a usage error (exit 2) past what the hub allows, like one below 1. */
const depthOption = wholeNumber("--depth", 1, MAX_NEIGHBOURHOOD_DEPTH);

function thingPath(id: string): string {
  return `things/${encodeURIComponent(id)}`;
}

/** The graph endpoints (docs/queries.md), on top of the hub client's requests and errors. */
class GraphClient extends HubClient {
  async link(from: string, rel: string, to: string): Promise<{ linked: boolean }> {
    const response = await this.request("POST", `${thingPath(from)}/links`, {
      body: JSON.stringify({ rel, href: to }),
      contentType: "application/json",
    });
    return (await this.jsonOf(response)) as { linked: boolean };
  }

  async unlink(from: string, rel: string, to: string): Promise<void> {
    const url = new URL(`${thingPath(from)}/links`, this.url);
    url.searchParams.set("rel", rel);
    url.searchParams.set("href", to);
    await this.request("DELETE", url);
  }

  async links(id: string, direction: "out" | "in", rel?: string): Promise<GraphLink[]> {
    const url = new URL(`${thingPath(id)}/links`, this.url);
    url.searchParams.set("direction", direction);
    if (rel !== undefined) url.searchParams.set("rel", rel);
    return (await this.jsonOf(await this.request("GET", url))) as GraphLink[];
  }
}

function graphClientOf(command: Command): GraphClient {
  const { url, token } = connectionOf(command);
  try {
    return new GraphClient({ url, token });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

function compact(value: unknown, width = 40): string {
  const text = JSON.stringify(value) ?? "";
  const chars = Array.from(text);
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join("")}…`;
}

function typesOf(td: Record<string, unknown>): string {
  const t = td["@type"];
  return Array.isArray(t) ? t.join(", ") : typeof t === "string" ? t : "";
}

/** One line per Thing of a neighbourhood, drawn as a tree: `├─ hosts → urn:x  Title  [Type]`. */
export function formatNeighbourhood(root: NeighbourhoodNode): string {
  // The hub expands a Thing where it is nearest the root, which a depth-first drawing may put
  // below a place where it is met again: line numbers tell which way to look.
  const expandedAt = new Map<string, number>();
  let line = 0;
  const number = (node: NeighbourhoodNode) => {
    if (!node.repeated) expandedAt.set(node.id, line);
    line++;
    for (const link of node.links) number(link.node);
  };
  number(root);
  line = 0;
  // Types as `find` shows them (`saref:Pump`), by the prefixes the hub sent with the root.
  const prefixes = Object.entries(root.prefixes ?? {});
  const label = (node: NeighbourhoodNode) =>
    [
      node.id,
      node.title,
      node.types.length > 0 ? `[${node.types.map((t) => compactIri(t, prefixes)).join(", ")}]` : undefined,
      node.resolved ? undefined : "(not registered)",
      node.repeated ? ((expandedAt.get(node.id) ?? 0) < line ? "(see above)" : "(see below)") : undefined,
    ]
      .filter((part) => part !== undefined && part !== "")
      .join("  ");
  const lines = [label(root)];
  const walk = (node: NeighbourhoodNode, indent: string) => {
    node.links.forEach((link, i) => {
      const last = i === node.links.length - 1;
      const arrow = link.direction === "out" ? "→" : "←";
      line = lines.length;
      lines.push(`${indent}${last ? "└─" : "├─"} ${link.rel} ${arrow} ${label(link.node)}`);
      walk(link.node, indent + (last ? "   " : "│  "));
    });
  };
  walk(root, "");
  return lines.map((l) => `${l}\n`).join("");
}

interface FindOptions {
  limit?: number;
  json?: boolean;
}

async function find(filter: string, options: FindOptions, command: Command): Promise<void> {
  const client = graphClientOf(command);
  const wanted = options.limit ?? DEFAULT_FIND_LIMIT;
  const items: GraphPage["items"] = [];
  let more = false;
  // One more than shown says whether there are more.
  for await (const item of client.graphAll(filter, { pageSize: Math.min(MAX_PAGE, wanted + 1) })) {
    if (items.length === wanted) {
      more = true;
      break;
    }
    items.push(item);
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(items)}\n`);
    return;
  }
  if (items.length === 0) {
    process.stderr.write("no Thing matches\n");
    return;
  }
  const rows = items.map((item) => [
    item.id,
    item.td.title,
    typesOf(item.td),
    Object.entries(item.state)
      .map(([k, v]) => `${k}=${compact(v, 24)}`)
      .join(" "),
  ]);
  process.stdout.write(
    formatTable(["ID", "TITLE", "TYPE", "STATE"], rows, { maxWidth: process.stdout.columns || undefined }),
  );
  if (more) process.stderr.write(`showing the first ${items.length}; give --limit for more\n`);
}

export function registerGraphCommands(program: Command): void {
  const help = () => connectionHelpWith(EXIT_CODES);
  program
    .command("link")
    .description("link one Thing to another: adds {rel, href} to the first one's TD links")
    .argument("<from>", "the Thing whose TD gets the link")
    .argument("<rel>", "the relation: partOf, hosts, runsOn, controls, dependsOn, or any IRI")
    .argument("<to>", "the other Thing's id (it may not be registered yet)")
    .addHelpText("after", help)
    .action(
      talking(async (from: string, rel: string, to: string, _options: unknown, command: Command) => {
        const { linked } = await graphClientOf(command).link(from, rel, to);
        process.stdout.write(
          linked ? `linked ${from} ${rel} ${to}\n` : `already linked: ${from} ${rel} ${to}\n`,
        );
      }),
    );

  program
    .command("unlink")
    .description("remove a link from a Thing's TD")
    .argument("<from>", "the Thing whose TD has the link")
    .argument("<rel>", "the relation")
    .argument("<to>", "the other Thing's id")
    .addHelpText("after", help)
    .action(
      talking(async (from: string, rel: string, to: string, _options: unknown, command: Command) => {
        await graphClientOf(command).unlink(from, rel, to);
        process.stdout.write(`unlinked ${from} ${rel} ${to}\n`);
      }),
    );

  program
    .command("find")
    .description("the Things matching a graph filter, with their current state (see docs/queries.md)")
    .argument("<filter>", `e.g. 'type = TemperatureSensor AND state.temperature > 30'`)
    .option(
      "--limit <n>",
      `at most this many Things (default ${DEFAULT_FIND_LIMIT})`,
      wholeNumber("--limit", 1),
    )
    .option("--json", "the matches as one JSON array of {id, td, state}, for scripts")
    .addHelpText("after", help)
    .action(
      talking(async (filter: string, options: FindOptions, command: Command) =>
        find(filter, options, command),
      ),
    );

  program
    .command("links")
    .description("a Thing's links: out of it (default) or into it (--in)")
    .argument("<id>", "the Thing")
    .option("--in", "the links other Things have to it")
    .option("--rel <rel>", "only this relation")
    .option("--json", "the links as one JSON array")
    .addHelpText("after", help)
    .action(
      talking(
        async (id: string, options: { in?: boolean; rel?: string; json?: boolean }, command: Command) => {
          const links = await graphClientOf(command).links(id, options.in ? "in" : "out", options.rel);
          if (options.json) {
            process.stdout.write(`${JSON.stringify(links)}\n`);
            return;
          }
          if (links.length === 0) {
            process.stderr.write(
              `no links ${options.in ? "into" : "out of"} ${id}${options.rel === undefined ? "" : ` with rel ${options.rel}`}\n`,
            );
            return;
          }
          const rows = links.map((l) => [l.from, l.rel, l.to, l.resolved ? "" : "not registered"]);
          process.stdout.write(formatTable(["FROM", "REL", "TO", ""], rows));
        },
      ),
    );

  program
    .command("graph")
    .description("print a Thing's neighbourhood (links out → and in ←) as a tree")
    .argument("<id>", "the Thing at the root")
    .option("--depth <n>", `how many links away (default 1, at most ${MAX_NEIGHBOURHOOD_DEPTH})`, depthOption)
    .option("--rel <rel>", "follow only this relation")
    .option("--json", "the tree as JSON")
    .addHelpText("after", help)
    .action(
      talking(
        async (id: string, options: { depth?: number; rel?: string; json?: boolean }, command: Command) => {
          const tree = await graphClientOf(command).neighbourhood(id, options.depth ?? 1, options.rel);
          process.stdout.write(options.json ? `${JSON.stringify(tree)}\n` : formatNeighbourhood(tree));
        },
      ),
    );
}

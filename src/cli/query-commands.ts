// `things query 'GRAPHQL'`: one GraphQL operation against the hub's /graphql (docs/graphql.md),
// its data printed as JSON; and the GraphQL client the other commands stream with (`watch`).
import { InvalidArgumentError, type Command } from "commander";
import { readFileSync } from "node:fs";
import {
  GraphqlClient,
  GraphqlRequestError,
  GraphqlSocketError,
  type SocketStatus,
} from "../client/index.js";
import { inexactIntegerError } from "../core/index.js";
import { connectionOf, connectionHelpWith, talking, unauthorizedHint } from "./client-commands.js";
import { fileProblem } from "../hub/file-problem.js";
import { CliError } from "./cli-error.js";

const EXIT_CODES = "0 done, 1 failed (the hub answered with errors, or is unreachable), 2 usage";

/**
 * The hub's GraphQL client for this command's --url and --token; `ws` is Node 20's WebSocket,
 * loaded here rather than by every `things` command (about a third of a command's start-up CPU).
 */
export async function graphqlClientOf(
  command: Command,
  onStatus?: (status: SocketStatus) => void,
): Promise<GraphqlClient> {
  const { url, token } = connectionOf(command);
  const { default: WebSocket } = await import("ws");
  try {
    return new GraphqlClient({ url, token, webSocketImpl: WebSocket, ...(onStatus && { onStatus }) });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

/** A GraphQL failure as the one line the CLI prints: each message, with its code. */
export function graphqlFailure(err: unknown): unknown {
  if (err instanceof GraphqlRequestError) {
    const text = err.errors
      .map((e) => {
        const code = e.extensions?.code;
        const where = e.path ? ` at ${e.path.join(".")}` : "";
        return `${e.message}${where}${typeof code === "string" ? ` (${code})` : ""}`;
      })
      .join("; ");
    // Refused for want of a token (or for a token that is none of the hub's): where to find one.
    const unauthenticated = err.errors.some((e) => e.extensions?.code === "UNAUTHENTICATED");
    return new CliError(`${text}${unauthenticated ? unauthorizedHint() : ""}`);
  }
  if (err instanceof GraphqlSocketError) return new CliError(err.message);
  return err;
}

/** `--var name=value`: the value is JSON when it parses as JSON, a string otherwise. */
function variable(text: string, previous: Record<string, unknown> = {}): Record<string, unknown> {
  const at = text.indexOf("=");
  const name = at === -1 ? "" : text.slice(0, at);
  if (!/^[_A-Za-z][_0-9A-Za-z]*$/.test(name)) {
    throw new InvalidArgumentError(`"${text}" is not name=value with a GraphQL variable name`);
  }
  const raw = text.slice(at + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw) as unknown;
  } catch {
    // Not JSON: the text itself.
    return { ...previous, [name]: value };
  }
  // An integer a 64-bit float would round is said, not sent rounded.
  const inexact = inexactIntegerError(raw);
  if (inexact !== undefined) throw new InvalidArgumentError(`${name}=${raw}: ${inexact.message}`);
  return { ...previous, [name]: value };
}

/** The operation's text: given, or read from a file named `@path`. */
function operationText(text: string): string {
  if (!text.startsWith("@")) return text;
  const path = text.slice(1);
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read the query in ${path}: ${fileProblem(err)}`, 2);
  }
}

interface QueryOptions {
  var?: Record<string, unknown>;
  operation?: string;
  compact?: boolean;
}

export function registerQueryCommands(program: Command): void {
  program
    .command("query")
    .description(
      "run a GraphQL query or mutation against the hub (docs/graphql.md) and print its data as JSON",
    )
    .argument("<graphql>", "the operation, or @file to read it from a file")
    .option("--var <name=value>", "a variable (JSON, or else a string); repeat for more", variable)
    .option("--operation <name>", "which operation of the document to run")
    .option("--compact", "the JSON on one line")
    .addHelpText(
      "after",
      () =>
        `\nExamples:\n  things query '{ thing(id: "urn:dev:lamp") { title properties { name value } } }'\n` +
        `  things query 'mutation ($id: ID!) { remove(id: $id) { seq } }' --var id=urn:dev:lamp\n` +
        connectionHelpWith(EXIT_CODES),
    )
    .action(
      talking(async (text: string, options: QueryOptions, command: Command) => {
        const client = await graphqlClientOf(command);
        try {
          const data = await client.request(operationText(text), options.var ?? {}, {
            ...(options.operation !== undefined && { operationName: options.operation }),
          });
          process.stdout.write(`${JSON.stringify(data, null, options.compact ? undefined : 2)}\n`);
        } catch (err) {
          throw graphqlFailure(err);
        }
      }),
    );
}

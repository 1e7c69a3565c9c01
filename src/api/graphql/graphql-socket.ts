// GraphQL over WebSocket at /graphql, with the graphql-ws protocol (graphql-transport-ws): the
// token comes in `connection_init` (`{ token }`; a bad one closes the socket with 4403), then
// queries, mutations and subscriptions share the socket, each checked like an HTTP request, and
// each socket is bounded: operations per second, subscriptions at once, Changes queued.
import type { FastifyInstance } from "fastify";
import type { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import {
  OperationTypeNode,
  getOperationAST,
  createSourceEventStream,
  execute,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer, type WebSocket } from "ws";
import type { Hub, Principal } from "../../hub/index.js";
import {
  ForbiddenError,
  MethodNotAllowedError,
  NotFoundError,
  TooManyRequestsError,
  ValidationError,
  echoed,
  inexactInteger,
  quoted,
  type HyperthingsError,
} from "../../core/index.js";
import { authorityOf, misdirectedHost } from "../http/host-check.js";
import { refuseUpgrade } from "../http/problem.js";
import { upgradedSockets } from "../http/shutdown.js";
import { cutWhenStill } from "../http/stream-stall.js";
import { ERROR_CODES, formatError, graphqlError } from "./errors.js";
import { AnswerBudget, boundedResult, exactSizeIfNeeded, rootTypenameBytes } from "./answer-size.js";
import { TokenBucket } from "./limits.js";
import { prepareOperation, validationRules } from "./operation.js";
import type { GraphqlContext } from "./resolvers.js";

export const GRAPHQL_PATH = "/graphql";
/** RFC 6455 §7.4.1: "try again later" — the client reconnects, and resumes. */
export const CLOSE_TOO_SLOW = 1013;
/**
 * How long a socket the hub closes (too slow, or the hub stopping) has to complete the close (at
 * most; never longer than streamStallMs) before it is cut: a client that reads nothing never
 * answers the close frame, and `ws` would hold its socket for 30 s.
 */
const CLOSE_GRACE_MS = 5_000;

interface SocketState {
  principal: Principal | undefined;
  bucket: TokenBucket;
  subscriptions: Set<string>;
  context: GraphqlContext;
}

/** A WebSocket close reason is at most 123 bytes. */
function closeReason(text: string): string {
  const bytes = Buffer.from(text);
  return bytes.length <= 123
    ? text
    : `${bytes
        .subarray(0, 120)
        .toString("utf8")
        .replace(/\uFFFD+$/, "")}…`;
}

/** Where a `subscribe` message holds its variables (graphql-ws PROTOCOL.md, Subscribe). */
const VARIABLES = "/payload/variables";

/**
 * The refusal of a `subscribe` whose variables hold an integer JSON.parse rounds
 * (9007199254740993 read as ...992), as the HTTP body and GET variables are refused
 * (parseExactJson): graphql-ws has parsed the message already, so the check reads its text. The
 * message is valid JSON and a valid Subscribe, so by the protocol it is answered with an `error`
 * message for its id, not closed with 4400 (graphql-ws's answer to a message it cannot parse).
 */
function inexactVariable(text: string): ReturnType<typeof graphqlError> | undefined {
  const inexact = inexactInteger(text, VARIABLES);
  if (inexact === undefined) return undefined;
  const pointer = inexact.pointer.slice(VARIABLES.length);
  const name = pointer.split("/")[1] ?? "";
  const at = pointer === `/${name}` ? "" : ` at ${echoed(pointer.slice(name.length + 1))}`;
  return graphqlError(
    `Variable ${quoted(`$${name}`)}${at} ${inexact.message}: send it as a string, or with an exponent to take the nearest float`,
    ERROR_CODES.badInput,
    { errors: [{ pointer: `/variables${pointer}`, detail: inexact.message }] },
  );
}

type Result = ExecutionResult | Promise<ExecutionResult>;

/**
 * graphql-js's `execute`, with the answer bounded (graphql.maxAnswerBytes): a fresh budget for
 * this execution (one operation, or one subscription message), and the result checked against it.
 */
async function executeBounded(args: ExecutionArgs): Promise<ExecutionResult> {
  const context = args.contextValue as GraphqlContext;
  const answer = new AnswerBudget(context.limits.maxAnswerBytes);
  answer.charge(rootTypenameBytes(args.schema, args.document, args.operationName));
  const result = await execute({ ...args, contextValue: { ...context, answer } });
  const mutation =
    getOperationAST(args.document, args.operationName ?? undefined)?.operation === OperationTypeNode.MUTATION;
  return boundedResult(result, answer, mutation, exactSizeIfNeeded(result, answer));
}

/**
 * graphql-js's `subscribe`, except that the selection is executed once per event and operation
 * text: the same Change reaches every subscription as one object, so subscribers that asked the
 * same thing (a dashboard open a thousand times) share one result. Resolvers of the streamed
 * types read only the event, never who asks (authorisation is per operation, before it runs).
 */
function sharedSubscribe(keys: WeakMap<DocumentNode, string>) {
  const results = new WeakMap<object, Map<string, Result>>();
  return async (args: ExecutionArgs) => {
    const source = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in source)) return source;
    const iterator = source[Symbol.asyncIterator]();
    const key = keys.get(args.document);
    const resultOf = (event: unknown): Result => {
      const run = () => executeBounded({ ...args, rootValue: event });
      if (key === undefined || typeof event !== "object" || event === null) return run();
      let byKey = results.get(event);
      if (!byKey) results.set(event, (byKey = new Map<string, Result>()));
      let result = byKey.get(key);
      if (!result) byKey.set(key, (result = run()));
      return result;
    };
    // Written out rather than as an async generator, so that `return` ends the stream at once
    // even while it waits for an event.
    const stream: AsyncIterableIterator<ExecutionResult> = {
      [Symbol.asyncIterator]: () => stream,
      next: async () => {
        const item = await iterator.next();
        return item.done
          ? { value: undefined, done: true }
          : { value: await resultOf(item.value), done: false };
      },
      return: async () => {
        await iterator.return?.();
        return { value: undefined, done: true };
      },
      throw: async (error: unknown) => {
        await iterator.return?.();
        throw error;
      },
    };
    return stream;
  };
}

/** Which header of a handshake ws refused (by its message), as the error the hub answers with. */
function handshakeRefusal(
  message: string,
  request: IncomingMessage,
): { error: HyperthingsError; headers?: Record<string, string> } {
  if (message === "Invalid HTTP method")
    return {
      error: new MethodNotAllowedError(
        `A WebSocket to ${GRAPHQL_PATH} is opened with GET, not ${request.method ?? "?"}`,
        ["GET"],
      ),
    };
  const [name, must] =
    message === "Invalid Upgrade header"
      ? ["upgrade", "must be websocket"]
      : message.includes("Sec-WebSocket-Key")
        ? ["sec-websocket-key", "must be 16 bytes in base64 (RFC 6455 §4.1)"]
        : message.includes("Sec-WebSocket-Version")
          ? ["sec-websocket-version", "must be 13 (RFC 6455), or 8"]
          : message.includes("Sec-WebSocket-Protocol")
            ? ["sec-websocket-protocol", "must be subprotocol names separated by commas"]
            : message.includes("Sec-WebSocket-Extensions")
              ? ["sec-websocket-extensions", "must be extensions this hub takes (RFC 6455 §9.1)"]
              : ["", message];
  const given = name === "" ? undefined : request.headers[name];
  const shown = given === undefined ? "none" : quoted(String(given));
  const error =
    name === ""
      ? new ValidationError(`The WebSocket handshake is refused: ${message}`)
      : new ValidationError(`The WebSocket handshake's ${name} header ${must}, not ${shown}`, [
          { pointer: `/headers/${name}`, message: must },
        ]);
  return {
    error,
    ...(name === "sec-websocket-version" && { headers: { "Sec-WebSocket-Version": "13, 8" } }),
  };
}

/**
 * The origin of the web page that opens a socket, when it is not the hub's own. A browser lets any
 * page open a WebSocket to any address, a hub on 127.0.0.1 included, with no same-origin check; it
 * sends the page's Origin (RFC 6455 §10.2), which a page cannot forge. Without this check any site
 * its user visits could read the hub through the socket (reads are open by default). Programs send
 * no Origin. Behind a proxy that rewrites Host, X-Forwarded-Host names the hub: a page cannot set
 * that header on a WebSocket either.
 */
export function foreignOrigin(request: IncomingMessage): string | undefined {
  const origin = request.headers.origin;
  if (origin === undefined) return undefined;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return origin;
  }
  const forwarded = request.headers["x-forwarded-host"];
  const hubHosts = [request.headers.host, ...(typeof forwarded === "string" ? forwarded.split(",") : [])];
  const own = hubHosts.some((name) => name !== undefined && name.trim().toLowerCase() === host.toLowerCase());
  return own && host !== "" ? undefined : origin;
}

export function attachGraphqlSocket(app: FastifyInstance, hub: Hub, schema: GraphQLSchema): void {
  const limits = hub.config.graphql;
  const rules = validationRules(limits);
  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxPayload });
  // ws answers a handshake it refuses in text/html; the hub answers every refusal alike.
  wss.on("wsClientError", (error: Error, socket: Duplex, request: IncomingMessage) => {
    const refused = handshakeRefusal(error.message, request);
    refuseUpgrade(socket, refused.error, GRAPHQL_PATH, refused.headers);
  });
  const states = new WeakMap<WebSocket, SocketState>();
  /**
   * Each socket's message being handled, as its client sent it: graphql-ws parses it and calls
   * onSubscribe before it awaits anything, between this module's two listeners (the first keeps
   * it, the last lets it go).
   */
  const messageOf = new WeakMap<WebSocket, unknown>();
  /** Each subscription's document → its operation text and variables, for sharing results. */
  const documentKeys = new WeakMap<DocumentNode, string>();
  const graceMs = Math.min(CLOSE_GRACE_MS, hub.config.streamStallMs);
  /** Each socket's connection, which says what its client took of what the hub sent. */
  const connectionsOf = new WeakMap<WebSocket, Socket>();
  /**
   * Closes the socket, and cuts it if its client has not completed the close within graceMs of
   * taking nothing: the close frame goes out behind what is queued, which a slow client may still
   * be taking, and a client whose close frame waited for a held thread to write it is not cut.
   */
  const closeOrCut = (socket: WebSocket, code: number, reason: string) => {
    socket.close(code, closeReason(reason));
    const connection = connectionsOf.get(socket);
    cutWhenStill(
      graceMs,
      // The bytes the kernel took, and whether the hub ended its side (its client's close came).
      () =>
        connection === undefined
          ? ""
          : `${connection.bytesWritten - connection.writableLength} ${connection.writableEnded}`,
      () => socket.readyState === socket.CLOSED,
      () => socket.terminate(),
    );
  };

  useServer<Record<string, unknown> | undefined>(
    {
      subscribe: sharedSubscribe(documentKeys),
      execute: executeBounded,
      // The hub's own checks (parse, limits, authorisation) run in onSubscribe; errors go out formatted.
      onConnect: (ctx) => {
        const socket = ctx.extra.socket;
        const token = ctx.connectionParams?.token;
        let principal: Principal | undefined;
        if (token !== undefined) {
          if (typeof token !== "string") return false;
          principal = hub.authenticate(token);
          if (!principal) return false;
        } else if (hub.config.authRead) {
          return false;
        }
        const context: GraphqlContext = {
          hub,
          principal,
          limits,
          via: "graphql-ws",
          overflow: (reason) => {
            if (socket.readyState !== socket.OPEN) return;
            hub.logger.warn({ reason }, "closing a GraphQL socket that does not keep up");
            closeOrCut(socket, CLOSE_TOO_SLOW, `too slow: ${reason}`);
          },
        };
        states.set(socket, {
          principal,
          bucket: new TokenBucket(limits.operationsPerSecond, limits.operationsBurst),
          subscriptions: new Set(),
          context,
        });
        return true;
      },
      onSubscribe: (ctx, id, payload) => {
        const state = states.get(ctx.extra.socket);
        if (!state) return [graphqlError("The connection is not initialised", ERROR_CODES.unauthenticated)];
        if (!state.bucket.take()) {
          return [
            graphqlError(
              `Too many operations on this socket: at most ${limits.operationsPerSecond} a second (bursts of ${limits.operationsBurst})`,
              ERROR_CODES.rate,
            ),
          ];
        }
        if (typeof payload.query !== "string") {
          return [graphqlError("The operation has no query text", ERROR_CODES.badRequest)];
        }
        const inexact =
          payload.variables == null ? undefined : inexactVariable(String(messageOf.get(ctx.extra.socket)));
        if (inexact !== undefined) return [inexact];
        const prepared = prepareOperation(
          hub,
          schema,
          rules,
          {
            query: payload.query,
            variables: payload.variables ?? null,
            operationName: payload.operationName ?? null,
          },
          state.principal,
        );
        if (!prepared.ok) return prepared.errors;
        if (prepared.operation.operation === OperationTypeNode.SUBSCRIPTION) {
          // A subscription the client completed has left graphql-ws's record at once; onComplete follows later.
          for (const open of state.subscriptions)
            if (!(open in ctx.subscriptions)) state.subscriptions.delete(open);
          if (state.subscriptions.size >= limits.maxSubscriptions) {
            return [
              graphqlError(
                `This socket holds ${state.subscriptions.size} subscriptions, the most it may; complete one first`,
                ERROR_CODES.subscriptions,
                { maxSubscriptions: limits.maxSubscriptions },
              ),
            ];
          }
          state.subscriptions.add(id);
          documentKeys.set(
            prepared.document,
            `${payload.operationName ?? ""}\u0000${JSON.stringify(payload.variables ?? null)}\u0000${payload.query}`,
          );
        }
        const args: ExecutionArgs = {
          schema,
          document: prepared.document,
          operationName: payload.operationName ?? null,
          variableValues: payload.variables ?? null,
          contextValue: state.context,
        };
        return args;
      },
      onComplete: (ctx, id) => {
        states.get(ctx.extra.socket)?.subscriptions.delete(id);
      },
      onError: (_ctx, _id, _payload, errors) =>
        errors.map((e) => formatError(e, (err) => hub.logger.error({ err }, "a GraphQL operation failed"))),
      onNext: (ctx, id, _payload, _args, result) => {
        // A subscription whose stream could not start (e.g. an unknown Thing) ends here.
        if (result.errors && "data" in result && result.data == null) {
          states.get(ctx.extra.socket)?.subscriptions.delete(id);
        }
        if (!result.errors) return undefined;
        return {
          ...result,
          errors: result.errors.map((e) =>
            formatError(e, (err) => hub.logger.error({ err }, "a GraphQL resolver failed")),
          ),
        };
      },
    },
    wss,
  );

  app.server.on("upgrade", (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgradedSockets.add(socket);
    const path = (request.url ?? "").split("?", 1)[0];
    if (path !== GRAPHQL_PATH) {
      // Nobody else serves WebSockets here: answer, rather than cut the socket without a word.
      if (app.server.listenerCount("upgrade") === 1)
        refuseUpgrade(
          socket,
          new NotFoundError(
            `No WebSocket is served at ${echoed(path ?? "/")}: the hub's one socket is ${GRAPHQL_PATH} (GraphQL over graphql-transport-ws)`,
          ),
          path ?? "/",
        );
      return;
    }
    const misdirected = misdirectedHost(hub.config, authorityOf(request));
    if (misdirected !== undefined) {
      refuseUpgrade(socket, misdirected, path);
      return;
    }
    const foreign = foreignOrigin(request);
    if (foreign !== undefined) {
      refuseUpgrade(
        socket,
        new ForbiddenError(
          `A page of ${foreign} may not open a socket to this hub: only the hub's own pages and programs (which send no Origin) may`,
        ),
        path,
      );
      return;
    }
    // A socket counts among its client's streams (stream-slots.ts) until its connection closes.
    let release: () => void;
    try {
      release = app.streamSlots.take(request.socket.remoteAddress ?? "");
    } catch (error) {
      if (!(error instanceof TooManyRequestsError)) throw error;
      refuseUpgrade(socket, error, path);
      return;
    }
    socket.once("close", release);
    wss.handleUpgrade(request, socket, head, (ws) => {
      if (socket instanceof Socket) connectionsOf.set(ws, socket);
      // Before graphql-ws's own listener (added on "connection"), so that it runs first; read as
      // graphql-ws reads it (String), and only when a subscribe has variables.
      ws.on("message", (data) => messageOf.set(ws, data));
      wss.emit("connection", ws, request);
      // …and let go of it after graphql-ws's listener: a socket that goes quiet holds no message.
      ws.on("message", () => messageOf.delete(ws));
      // graphql-ws prints every error of a socket to stderr with its stack, outside the hub's log:
      // a client could fill it with over-size or malformed frames. Such an error is the client's
      // (ws has already begun the close with its code: 1009, 1002…) or its connection's; the
      // hub's log says it at debug level, and a socket still open is closed as graphql-ws would.
      ws.removeAllListeners("error");
      ws.on("error", (err: Error & { code?: string }) => {
        hub.logger.debug(
          { err: err.message, code: err.code },
          "a GraphQL socket's client sent what the hub refuses, or went away",
        );
        if (ws.readyState === ws.OPEN) closeOrCut(ws, 1011, "Internal server error");
      });
    });
  });

  // Open sockets would hold subscriptions (and the store) open: close them first.
  app.addHook("preClose", async () => {
    // A client that reads nothing never completes the close: it would hold the stop for 30 s.
    for (const client of wss.clients) closeOrCut(client, 1001, "the hub is stopping");
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  });
}

// Expect (RFC 9110 §10.1.1). With 100-continue the client waits to hear that its body is wanted.
// Node answers 100 Continue itself before anyone looks at the request, so a body past the limit,
// or one from a client without a token, was invited and then refused. Here the hub says 100
// Continue only once the request has passed every check made before the body is read, and its
// Content-Length is within the route's limit; any other answer comes at once, and closes the
// connection (the body the client held back would otherwise be read as its next request). Any
// other expectation is a 417 problem document.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { IncomingMessage, ServerResponse } from "node:http";
import { quoted } from "../../core/index.js";
import { PROBLEM_CONTENT_TYPE, instanceOf, problemType, type Problem } from "./problem.js";

const continued = new WeakSet<FastifyRequest>();

function expectsContinue(request: FastifyRequest): boolean {
  return request.headers.expect?.trim().toLowerCase() === "100-continue";
}

export function registerExpectContinue(app: FastifyInstance): void {
  // Any other expectation: Node's own 417 has no body; this one is a problem document.
  app.server.on("checkExpectation", (request: IncomingMessage, response: ServerResponse) => {
    const expect = String(request.headers.expect ?? "");
    const body = JSON.stringify({
      type: problemType("request"),
      title: "Expectation Failed",
      status: 417,
      detail: `The hub meets no expectation but 100-continue, not ${quoted(expect)}`,
      instance: instanceOf(request.url ?? "/"),
    } satisfies Problem);
    response.writeHead(417, {
      "content-type": PROBLEM_CONTENT_TYPE,
      "content-length": Buffer.byteLength(body),
      connection: "close",
    });
    response.end(body);
  });
  // With a listener, Node leaves 100 Continue to it and passes the request on as any other.
  app.server.on("checkContinue", (request, response) => app.server.emit("request", request, response));
  // preParsing: after the onRequest checks (authorization, Host, Accept), before the body is read.
  app.addHook("preParsing", async (request, reply, payload) => {
    if (!expectsContinue(request)) return payload;
    const length = Number(request.headers["content-length"]);
    const limit = request.routeOptions.bodyLimit;
    // Past the limit: the body parser refuses it (413) without reading it.
    if (Number.isFinite(length) && typeof limit === "number" && length > limit) return payload;
    continued.add(request);
    reply.raw.writeContinue();
    return payload;
  });
  app.addHook("onSend", async (request, reply, payload) => {
    if (expectsContinue(request) && !continued.has(request) && !reply.raw.headersSent)
      void reply.header("connection", "close");
    return payload;
  });
}

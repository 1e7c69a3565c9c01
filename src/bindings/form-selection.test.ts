import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BindingError, ConflictError, NotFoundError, ValidationError } from "../core/index.js";
import type { ThingDescription } from "../core/index.js";
import type { Binding } from "./binding.js";
import { bindingFailure } from "./binding.js";
import {
  bindingFor,
  expandUriTemplate,
  formOps,
  isTopicFilter,
  parseFormTerms,
  resolveHref,
  selectForm,
  targetFor,
  templateVariables,
  uriVariableDefaults,
} from "./form-selection.js";

const lamp: ThingDescription = {
  "@context": "https://www.w3.org/2022/wot/td/v1.1",
  id: "urn:dev:lamp-1",
  title: "Lamp",
  base: "http://lamp.example:8080/api/",
  securityDefinitions: {
    nosec_sc: { scheme: "nosec" },
    basic_sc: { scheme: "basic" },
    bearer_sc: { scheme: "bearer" },
    key_sc: { scheme: "apikey", in: "header", name: "X-Api-Key" },
    digest_sc: { scheme: "digest" },
  },
  security: "basic_sc",
  uriVariables: { unit: { type: "string" } },
  properties: {
    brightness: {
      type: "integer",
      minimum: 0,
      maximum: 100,
      observable: true,
      uriVariables: { channel: { type: "integer" } },
      forms: [
        { href: "mqtt://broker.example/lamp/brightness", op: ["readproperty", "observeproperty"] },
        { href: "properties/brightness{?channel,unit}" },
        { href: "properties/brightness/events", op: "observeproperty", subprotocol: "sse" },
      ],
    },
    colour: {
      type: "string",
      forms: [{ href: "properties/colour", security: ["bearer_sc", "key_sc"] }],
    },
    secret: { type: "string", forms: [{ href: "properties/secret", security: "digest_sc" }] },
    power: { type: "boolean", forms: [{ href: "properties/power" }] },
  },
  actions: {
    fade: {
      input: { type: "object", properties: { to: { type: "integer" } } },
      output: { type: "string" },
      forms: [{ href: "actions/fade", "htv:methodName": "PATCH" }],
    },
  },
  events: {
    overheated: {
      data: { type: "number" },
      forms: [{ href: "mqtt://broker.example/lamp/overheated", "mqv:qos": "1" }],
    },
  },
  forms: [{ href: "all", op: ["readallproperties", "writeallproperties"] }],
};

const secrets = {
  basic_sc: { username: "ada", password: "s3cret" },
  bearer_sc: { token: "t0ken" },
  key_sc: { key: "k3y" },
};

describe("default ops (TD 1.1 §5.3.4.2)", () => {
  it("gives a property form without op readproperty and writeproperty, not observeproperty", () => {
    expect(formOps({ href: "x" }, "property")).toEqual(["readproperty", "writeproperty"]);
  });
  it("gives an action form invokeaction and an event form subscribeevent and unsubscribeevent", () => {
    expect(formOps({ href: "x" }, "action")).toEqual(["invokeaction"]);
    expect(formOps({ href: "x" }, "event")).toEqual(["subscribeevent", "unsubscribeevent"]);
  });
  it("gives a Thing-level form without op nothing, and keeps an explicit op", () => {
    expect(formOps({ href: "x" })).toEqual([]);
    expect(formOps({ href: "x", op: "readproperty" }, "property")).toEqual(["readproperty"]);
    expect(formOps({ href: "x", op: ["observeproperty"] }, "property")).toEqual(["observeproperty"]);
  });
});

describe("selectForm", () => {
  const forms = lamp.properties?.brightness?.forms ?? [];
  it("takes the first form that serves the operation, in TD order", () => {
    expect(selectForm(forms, "readproperty", { kind: "property", base: lamp.base })?.index).toBe(0);
    expect(selectForm(forms, "writeproperty", { kind: "property", base: lamp.base })?.index).toBe(1);
  });
  it("skips forms whose scheme has no binding, resolving relative hrefs against base", () => {
    const chosen = selectForm(forms, "readproperty", {
      kind: "property",
      base: lamp.base,
      schemes: ["http"],
    });
    expect(chosen?.index).toBe(1);
    expect(selectForm(forms, "readproperty", { kind: "property", schemes: ["http"] })).toBeUndefined();
  });
  it("finds nothing for an operation no form serves", () => {
    expect(selectForm(forms, "invokeaction", { kind: "property" })).toBeUndefined();
  });
});

describe("resolveHref", () => {
  it("resolves a relative href against base and keeps an absolute one", () => {
    expect(resolveHref("properties/x", "http://h:1/api/")).toBe("http://h:1/api/properties/x");
    expect(resolveHref("/x", "http://h:1/api/")).toBe("http://h:1/x");
    expect(resolveHref("mqtt://b/t", "http://h:1/api/")).toBe("mqtt://b/t");
  });
  it("refuses a relative href without base, and a base that is no URL", () => {
    expect(() => resolveHref("properties/x")).toThrow(ValidationError);
    expect(() => resolveHref("properties/x", "not a url")).toThrow(ValidationError);
  });
  it("keeps the base's origin for any relative path of plain segments", () => {
    const segment = fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/).filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const url = new URL(resolveHref(segments.join("/"), "https://thing.example:8443/api/v1/"));
        expect(url.origin).toBe("https://thing.example:8443");
        expect(url.pathname).toBe(`/api/v1/${segments.join("/")}`);
      }),
    );
  });
  it("ignores base for any absolute href", () => {
    fc.assert(
      fc.property(fc.webUrl(), fc.webUrl(), (href, base) => {
        expect(resolveHref(href, base)).toBe(new URL(href).href);
      }),
      { numRuns: 50 },
    );
  });
});

describe("expandUriTemplate (RFC 6570 levels 1–3)", () => {
  const vars = {
    var: "value",
    hello: "Hello World!",
    path: "/foo/bar",
    empty: "",
    x: 1024,
    y: 768,
    flag: true,
  };
  it.each([
    ["{var}", "value"],
    ["{hello}", "Hello%20World%21"],
    ["{+hello}", "Hello%20World!"],
    ["{+path}/here", "/foo/bar/here"],
    ["here?ref={+path}", "here?ref=/foo/bar"],
    ["{#var}", "#value"],
    ["{#hello}", "#Hello%20World!"],
    ["map?{x,y}", "map?1024,768"],
    ["{+x,hello,y}", "1024,Hello%20World!,768"],
    ["X{.var}", "X.value"],
    ["X{.x,y}", "X.1024.768"],
    ["{/var}", "/value"],
    ["{/var,x}/here", "/value/1024/here"],
    ["{;x,y}", ";x=1024;y=768"],
    ["{;x,y,empty}", ";x=1024;y=768;empty"],
    ["{?x,y}", "?x=1024&y=768"],
    ["{?x,y,empty}", "?x=1024&y=768&empty="],
    ["?fixed=yes{&x}", "?fixed=yes&x=1024"],
    ["{&x,y,empty}", "&x=1024&y=768&empty="],
    ["{?undef}", ""],
    ["{var,undef}", "value"],
    ["{?flag}", "?flag=true"],
    ["no/expressions", "no/expressions"],
  ])("expands %s to %s", (template, expected) => {
    expect(expandUriTemplate(template, vars)).toBe(expected);
  });
  it.each(["{x*}", "{x:3}", "{x", "x}", "{}", "{a b}", "{=x}", "{x,}"])(
    "refuses the template %s",
    (template) => {
      expect(() => expandUriTemplate(template, { x: "1" })).toThrow(ValidationError);
    },
  );
  it("refuses list and map values", () => {
    expect(() => expandUriTemplate("{x}", { x: [1, 2] })).toThrow(ValidationError);
    expect(() => expandUriTemplate("{x}", { x: { a: 1 } })).toThrow(ValidationError);
  });
  it("lists a template's variables", () => {
    expect(templateVariables("a/{b}{?c,d}{&e}")).toEqual(["b", "c", "d", "e"]);
  });
  it("encodes any simple value so that it decodes back and holds only unreserved characters", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (value) => {
        const expanded = expandUriTemplate("{x}", { x: value });
        expect(expanded).toMatch(/^(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*$/);
        expect(decodeURIComponent(expanded)).toBe(value);
      }),
    );
  });
  it("builds a query that URLSearchParams reads back", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", minLength: 1 }), fc.integer(), (a, b) => {
        const url = new URL(`http://h/p${expandUriTemplate("{?a,b}", { a, b })}`);
        expect(url.searchParams.get("a")).toBe(a);
        expect(url.searchParams.get("b")).toBe(String(b));
      }),
    );
  });
  it("never lets a variable move the request to another host or out of its path", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (value) => {
        const url = new URL(
          resolveHref(expandUriTemplate("things/{id}/state", { id: value }), "http://hub.example/"),
        );
        expect(url.host).toBe("hub.example");
        expect(url.pathname.startsWith("/things/")).toBe(true);
        expect(url.pathname.endsWith("/state")).toBe(true);
        expect(url.search).toBe("");
      }),
    );
  });
});

describe("parseFormTerms", () => {
  it("reads the HTTP and MQTT terms, with application/json by default", () => {
    expect(parseFormTerms({ href: "x" })).toEqual({ contentType: "application/json" });
    expect(
      parseFormTerms({
        href: "x",
        contentType: "text/plain",
        "htv:methodName": "POST",
        subprotocol: "sse",
        "mqv:topic": "a/b",
        "mqv:filter": "a/+/#",
        "mqv:qos": "2",
        "mqv:retain": true,
        "mqv:controlPacket": "mqv:publish",
        response: { contentType: "application/json", "mqv:topic": "a/b/reply" },
      }),
    ).toEqual({
      contentType: "text/plain",
      methodName: "POST",
      subprotocol: "sse",
      topic: "a/b",
      filter: "a/+/#",
      qos: 2,
      retain: true,
      controlPacket: "publish",
      responseTopic: "a/b/reply",
    });
  });
  it("reads the CoAP terms: cov:method, cov:contentFormat, cov:accept", () => {
    expect(
      parseFormTerms({
        href: "coap://plug/on",
        subprotocol: "cov:observe",
        "cov:method": "iPATCH",
        "cov:contentFormat": 60,
        "cov:accept": 50,
      }),
    ).toEqual({
      contentType: "application/json",
      subprotocol: "cov:observe",
      coapMethod: "iPATCH",
      contentFormat: 60,
      accept: 50,
    });
  });
  it.each([
    ["mqv:qos", "3"],
    ["mqv:qos", ""],
    ["cov:method", "TRACE"],
    ["cov:contentFormat", "50"],
    ["cov:contentFormat", 65536],
    ["cov:accept", 1.5],
    ["mqv:retain", "yes"],
    ["htv:methodName", "TRACE"],
    ["mqv:topic", "a/+"],
    ["mqv:filter", "a/#/b"],
    ["mqv:controlPacket", "connect"],
  ])("refuses %s = %j with a pointer to it", (term, value) => {
    try {
      parseFormTerms({ href: "x", [term]: value }, "/properties/p/forms/0");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).errors[0]?.pointer).toBe(`/properties/p/forms/0/${term}`);
    }
  });
  it("tells topic filters from non-filters (MQTT 5 §4.7)", () => {
    expect(["#", "+", "a/+/b", "a/#", "+/+", "/"].every(isTopicFilter)).toBe(true);
    expect(["", "a#", "a/#/b", "a+/b", "a\0"].some(isTopicFilter)).toBe(false);
  });
});

describe("targetFor", () => {
  it("builds a read target: form chosen by scheme, href expanded and resolved, schema and credentials", () => {
    const target = targetFor(lamp, {
      op: "readproperty",
      affordance: { kind: "property", name: "brightness" },
      uriVariables: { channel: 2, unit: "%" },
      secrets,
      schemes: ["http", "https"],
    });
    expect(target).toMatchObject({
      thing: "urn:dev:lamp-1",
      op: "readproperty",
      href: "http://lamp.example:8080/api/properties/brightness?channel=2&unit=%25",
      terms: { contentType: "application/json" },
      affordance: { kind: "property", name: "brightness" },
      schema: { type: "integer", minimum: 0, maximum: 100 },
      credentials: [{ scheme: "basic", username: "ada", password: "s3cret", name: "Authorization" }],
    });
    expect(target.schema).not.toHaveProperty("forms");
  });
  it("gives a URI variable not given the default its schema declares, the affordance's over the TD's", () => {
    const withDefaults: ThingDescription = {
      ...lamp,
      uriVariables: { unit: { type: "string", default: "lux" }, zone: { type: "integer", default: "x" } },
      properties: {
        brightness: {
          type: "integer",
          uriVariables: { channel: { type: "integer", default: 3 } },
          forms: [{ href: "rooms{/zone}/brightness{?channel,unit}" }],
        },
      },
    };
    const read = (uriVariables: Record<string, unknown>) =>
      targetFor(withDefaults, {
        op: "readproperty",
        affordance: { kind: "property", name: "brightness" },
        uriVariables,
        secrets,
      }).href;
    // zone's default is no integer: left out, as if it had none.
    expect(read({})).toBe("http://lamp.example:8080/api/rooms/brightness?channel=3&unit=lux");
    expect(read({ channel: 1, zone: 2 })).toBe(
      "http://lamp.example:8080/api/rooms/2/brightness?channel=1&unit=lux",
    );
    expect(uriVariableDefaults({ a: { type: "boolean", default: false }, b: { default: { x: 1 } } })).toEqual(
      {
        a: false,
      },
    );
  });

  it("prefers the observe form and falls back to the read form, which a binding polls", () => {
    const observe = targetFor(lamp, {
      op: "observeproperty",
      affordance: { kind: "property", name: "brightness" },
      secrets,
      schemes: ["http"],
    });
    expect(observe.href).toBe("http://lamp.example:8080/api/properties/brightness/events");
    expect(observe.terms.subprotocol).toBe("sse");
    const polled = targetFor(lamp, {
      op: "observeproperty",
      affordance: { kind: "property", name: "power" },
      secrets,
      pollIntervalMs: 250,
    });
    expect(polled).toMatchObject({
      op: "observeproperty",
      href: "http://lamp.example:8080/api/properties/power",
    });
    expect(polled.pollIntervalMs).toBe(250);
  });
  it("after an observe form, tries the next observe form, then every read form, wherever it stands", () => {
    const td: ThingDescription = {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      title: "Meter",
      base: "http://meter.example/",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        power: {
          type: "number",
          forms: [
            { href: "read-a", op: "readproperty" },
            { href: "both", op: ["readproperty", "observeproperty"] },
            { href: "watch", op: "observeproperty", subprotocol: "sse" },
            { href: "read-b", op: "readproperty" },
          ],
        },
      },
    };
    const tried: number[] = [];
    let after: number | undefined;
    for (;;) {
      let target;
      try {
        target = targetFor(td, {
          op: "observeproperty",
          affordance: { kind: "property", name: "power" },
          ...(after !== undefined && { after }),
        });
      } catch (error) {
        expect(error).toBeInstanceOf(NotFoundError);
        break;
      }
      tried.push(target.formIndex ?? -1);
      after = target.formIndex;
    }
    expect(tried).toEqual([1, 2, 0, 3]);
  });
  it("gives an action its input and output schemas and its method, and an event its data schema", () => {
    const invoke = targetFor(lamp, {
      op: "invokeaction",
      affordance: { kind: "action", name: "fade" },
      secrets,
    });
    expect(invoke.terms.methodName).toBe("PATCH");
    expect(invoke.schema).toEqual({ type: "string" });
    expect(invoke.inputSchema).toMatchObject({ type: "object" });
    const event = targetFor(lamp, {
      op: "subscribeevent",
      affordance: { kind: "event", name: "overheated" },
      secrets,
    });
    expect(event).toMatchObject({ href: "mqtt://broker.example/lamp/overheated", terms: { qos: 1 } });
    expect(event.schema).toEqual({ type: "number" });
  });
  it("uses Thing-level forms when no affordance is named", () => {
    const all = targetFor(lamp, { op: "readallproperties", secrets });
    expect(all.href).toBe("http://lamp.example:8080/api/all");
    expect(all.affordance).toBeUndefined();
  });
  it("applies every scheme a form's own security names, from the TD's definitions", () => {
    const target = targetFor(lamp, {
      op: "readproperty",
      affordance: { kind: "property", name: "colour" },
      secrets,
    });
    expect(target.credentials).toEqual([
      { scheme: "bearer", token: "t0ken", in: "header", name: "Authorization" },
      { scheme: "apikey", key: "k3y", in: "header", name: "X-Api-Key" },
    ]);
  });
  it("refuses a scheme the bindings cannot apply, and a scheme the hub has no secret for", () => {
    const secret = { op: "readproperty", affordance: { kind: "property", name: "secret" } } as const;
    expect(() => targetFor(lamp, { ...secret, secrets })).toThrow(ValidationError);
    const colour = { op: "readproperty", affordance: { kind: "property", name: "colour" } } as const;
    expect(() => targetFor(lamp, { ...colour, secrets: { bearer_sc: { token: "t" } } })).toThrow(
      ConflictError,
    );
  });
  it("refuses an unknown affordance, an operation without a form, and an undeclared or ill-typed variable", () => {
    expect(() =>
      targetFor(lamp, { op: "readproperty", affordance: { kind: "property", name: "nope" } }),
    ).toThrow(NotFoundError);
    expect(() =>
      targetFor(lamp, { op: "invokeaction", affordance: { kind: "property", name: "power" }, secrets }),
    ).toThrow(NotFoundError);
    const brightness = {
      op: "readproperty",
      affordance: { kind: "property", name: "brightness" },
      secrets,
    } as const;
    expect(() => targetFor(lamp, { ...brightness, uriVariables: { nope: 1 } })).toThrow(ValidationError);
    expect(() => targetFor(lamp, { ...brightness, uriVariables: { channel: "two" } })).toThrow(
      ValidationError,
    );
    expect(() => targetFor(lamp, { ...brightness, uriVariables: { channel: 1.5 } })).toThrow(ValidationError);
  });
  it("does not take inherited object keys for affordances or security definitions", () => {
    expect(() =>
      targetFor(lamp, { op: "readproperty", affordance: { kind: "property", name: "constructor" } }),
    ).toThrow(NotFoundError);
    const td = { ...lamp, security: "toString" };
    expect(() =>
      targetFor(td, { op: "readproperty", affordance: { kind: "property", name: "power" } }),
    ).toThrow(ValidationError);
  });
});

describe("bindingFor", () => {
  it("chooses by the scheme of the resolved href, and says which scheme has no binding", () => {
    const http = { schemes: ["http"] } as unknown as Binding;
    const bindings = new Map([["http", http]]);
    const target = targetFor(lamp, {
      op: "readproperty",
      affordance: { kind: "property", name: "power" },
      secrets,
    });
    expect(bindingFor(bindings, target)).toBe(http);
    const mqtt = targetFor(lamp, {
      op: "readproperty",
      affordance: { kind: "property", name: "brightness" },
      secrets,
    });
    try {
      bindingFor(bindings, mqtt);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(BindingError);
      expect(bindingFailure(error)).toMatchObject({
        reason: "unsupported",
        href: "mqtt://broker.example/lamp/brightness",
      });
    }
  });
});

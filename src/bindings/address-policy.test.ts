import type { LookupAddress } from "node:dns";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../core/index.js";
import {
  AddressDeniedError,
  AddressPolicy,
  LOCAL_RANGES,
  METADATA_AND_LINK_LOCAL_RANGES,
  loopbackServiceEndpoints,
  parseEndpoint,
} from "./address-policy.js";

function lookup(policy: AddressPolicy, host: string, all: boolean): Promise<string | LookupAddress[]> {
  return new Promise((resolve, reject) => {
    policy.lookup(host, { all }, (error, address) => (error ? reject(error) : resolve(address)));
  });
}

describe("AddressPolicy", () => {
  it("allows every address by default", () => {
    const policy = new AddressPolicy();
    expect(
      ["127.0.0.1", "10.1.2.3", "93.184.216.34", "::1", "2001:db8::1"].every((a) => policy.allows(a)),
    ).toBe(true);
  });
  it("denies what the deny list holds, in either family and in IPv4-mapped IPv6 form", () => {
    const policy = new AddressPolicy({ deny: ["10.0.0.0/8", "fd00::/8"] });
    expect(policy.allows("10.255.0.1")).toBe(false);
    expect(policy.allows("::ffff:10.0.0.1")).toBe(false);
    expect(policy.allows("fd12::1")).toBe(false);
    expect(policy.allows("11.0.0.1")).toBe(true);
    expect(policy.allows("not an address")).toBe(false);
  });
  it("allows only what the allow list holds when one is given", () => {
    const policy = new AddressPolicy({ allow: ["192.0.2.0/24", "127.0.0.1"], deny: ["192.0.2.128/25"] });
    expect(policy.allows("192.0.2.1")).toBe(true);
    expect(policy.allows("192.0.2.200")).toBe(false);
    expect(policy.allows("127.0.0.1")).toBe(true);
    expect(policy.allows("127.0.0.2")).toBe(false);
  });
  it("denies the metadata endpoint however its address is written: IPv4, mapped, compatible, NAT64", () => {
    // The hub's default deny list (loadConfig).
    const policy = new AddressPolicy({ deny: METADATA_AND_LINK_LOCAL_RANGES });
    for (const address of [
      "169.254.169.254",
      "::ffff:169.254.169.254",
      "::169.254.169.254",
      "::a9fe:a9fe",
      "64:ff9b::169.254.169.254",
      "64:ff9b::a9fe:a9fe",
      "fd00:ec2::254",
    ]) {
      expect(policy.allows(address), address).toBe(false);
    }
    // Other addresses under the NAT64 prefix are the IPv4 Internet: allowed.
    expect(policy.allows("64:ff9b::c633:6407")).toBe(true);
  });

  it("covers loopback, private and link-local ranges in LOCAL_RANGES", () => {
    const policy = new AddressPolicy({ deny: LOCAL_RANGES });
    for (const address of [
      "127.0.0.1",
      "10.0.0.1",
      "172.16.5.4",
      "192.168.1.1",
      "169.254.169.254",
      "::1",
      "fe80::1",
      "0.0.0.0",
    ]) {
      expect(policy.allows(address), address).toBe(false);
    }
    expect(policy.allows("198.51.100.7")).toBe(true);
  });
  it("refuses an unspecified address (0.0.0.0, ::) when loopback is refused, naming the loopback rule", () => {
    const policy = new AddressPolicy({ deny: ["127.0.0.0/8"] });
    expect(policy.allows("0.0.0.0")).toBe(false);
    expect(policy.allows("::ffff:0.0.0.0")).toBe(false);
    expect(policy.allows("::")).toBe(false);
    expect(policy.ruleFor("0.0.0.0")).toBe("deny 127.0.0.0/8: connecting to 0.0.0.0 reaches 127.0.0.1");
    expect(policy.checkHost("[::]")).toBeInstanceOf(AddressDeniedError);
    expect(policy.allows("0.0.0.1")).toBe(true);
    expect(
      new AddressPolicy({ allow: ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"] }).allows("::"),
    ).toBe(true);
    expect(new AddressPolicy({ allow: ["0.0.0.0/32", "::1/128"] }).allows("0.0.0.0")).toBe(false);
  });
  it("names the rule that refuses an address", () => {
    const policy = new AddressPolicy({ allow: ["10.0.0.0/8"], deny: ["10.1.0.0/16", "10.0.0.0/9"] });
    expect(policy.ruleFor("10.1.2.3")).toBe("deny 10.1.0.0/16");
    expect(policy.ruleFor("10.2.0.1")).toBe("deny 10.0.0.0/9");
    expect(policy.ruleFor("192.0.2.1")).toBe("not in allow 10.0.0.0/8");
    expect(policy.ruleFor("10.200.0.1")).toBeUndefined();
    expect(policy.checkHost("10.1.2.3")?.message).toBe(
      "10.1.2.3 is not allowed by the address policy (deny 10.1.0.0/16)",
    );
  });
  it.each(["10.0.0.0/33", "10.0.0/8", "::/129", "10.0.0.0/8/1", "10.0.0.0/x", "host/8"])(
    "refuses the range %s",
    (cidr) => {
      expect(() => new AddressPolicy({ deny: [cidr] })).toThrow(ValidationError);
    },
  );
  it("checks IP literals, with or without brackets, and lets names through to lookup", () => {
    const policy = new AddressPolicy({ deny: ["::1/128", "10.0.0.0/8"] });
    expect(policy.checkHost("[::1]")).toBeInstanceOf(AddressDeniedError);
    expect(policy.checkHost("10.0.0.1")).toBeInstanceOf(AddressDeniedError);
    expect(policy.checkHost("127.0.0.1")).toBeUndefined();
    expect(policy.checkHost("thing.example")).toBeUndefined();
  });
  it("resolves a name to its allowed addresses only, and fails when none is allowed", async () => {
    const allowV4 = new AddressPolicy({ deny: ["::1/128"] });
    expect(await lookup(allowV4, "localhost", true)).toEqual([{ address: "127.0.0.1", family: 4 }]);
    expect(await lookup(allowV4, "localhost", false)).toBe("127.0.0.1");
    const denyLoopback = new AddressPolicy({ deny: ["127.0.0.0/8", "::1/128"] });
    await expect(lookup(denyLoopback, "localhost", true)).rejects.toBeInstanceOf(AddressDeniedError);
  });
});

describe("AddressPolicy: ports", () => {
  it("parses ADDRESS:PORT and [V6]:PORT, and nothing else, as an endpoint", () => {
    expect(parseEndpoint("127.0.0.1:5432")).toEqual({ address: "127.0.0.1", port: 5432 });
    expect(parseEndpoint("[::1]:6379")).toEqual({ address: "::1", port: 6379 });
    for (const entry of [
      "127.0.0.1",
      "10.0.0.0/8",
      "::1",
      "fd00::/8",
      "1.2.3.4:0",
      "1.2.3.4:70000",
      "host:80",
    ])
      expect(parseEndpoint(entry), entry).toBeUndefined();
  });

  it("keeps a protected port from Things, on its address and on the unspecified ones, unless allow names it", () => {
    const protect = [{ cidr: "127.0.0.0/8", port: 8080, what: "the hub's own HTTP listener" }];
    const policy = new AddressPolicy({ protect });
    expect(policy.checkHost("127.0.0.1", 8080)?.message).toBe(
      "127.0.0.1:8080 is the hub's own HTTP listener, which the address policy keeps from Things: --allow 127.0.0.1:8080 to reach it",
    );
    expect(policy.checkHost("0.0.0.0", 8080)?.message).toContain("connecting to 0.0.0.0 reaches 127.0.0.1");
    expect(policy.checkHost("127.0.0.1", 8081)).toBeUndefined();
    expect(policy.checkHost("127.0.0.1")).toBeUndefined();
    const lifted = new AddressPolicy({ allow: ["127.0.0.1:8080"], protect });
    expect(lifted.checkHost("127.0.0.1", 8080)).toBeUndefined();
    // Ports alone narrow nothing; a port allowed does not lift a denied range.
    expect(lifted.allows("10.1.2.3")).toBe(true);
    const denied = new AddressPolicy({ allow: ["127.0.0.1:8080"], deny: ["127.0.0.0/8"], protect });
    expect(denied.checkHost("127.0.0.1", 8080)?.message).toContain("(deny 127.0.0.0/8)");
  });

  it("denies a port that deny names, at that port only", () => {
    const policy = new AddressPolicy({ deny: ["10.0.0.5:22"] });
    expect(policy.checkHost("10.0.0.5", 22)?.message).toBe(
      "10.0.0.5:22 is not allowed by the address policy (deny 10.0.0.5:22)",
    );
    expect(policy.checkHost("10.0.0.5", 80)).toBeUndefined();
  });

  it("protects the databases' ports on both loopbacks", async () => {
    const policy = new AddressPolicy({ protect: loopbackServiceEndpoints() });
    expect(policy.checkHost("[::1]", 5432)?.message).toContain("[::1]:5432 is a PostgreSQL port on loopback");
    expect(policy.checkHost("127.0.0.1", 6379)?.message).toContain("a Redis port on loopback");
    expect(policy.checkHost("10.0.0.1", 5432)).toBeUndefined();
    const resolved = await new Promise<unknown>((resolve) =>
      policy.lookupFor(5432)("localhost", {}, (error) => resolve(error)),
    );
    expect(resolved).toBeInstanceOf(AddressDeniedError);
  });
});

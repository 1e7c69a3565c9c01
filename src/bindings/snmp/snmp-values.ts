// SNMP values as the hub sees them: what a varbind decodes to (RFC 2578 SMIv2 types), and how a
// value is encoded for a SET with the ASN.1 type a form names. Pure: values in, values out.
import { ObjectType } from "net-snmp";
import type { Varbind } from "net-snmp";
import type { SnmpSetType } from "../binding.js";

/** The ASN.1 tag of each `snmp:type` a SET may name. */
const SET_TAGS: Readonly<Record<SnmpSetType, ObjectType>> = {
  Integer32: ObjectType.Integer32,
  Unsigned32: ObjectType.Unsigned32,
  Gauge32: ObjectType.Gauge32,
  TimeTicks: ObjectType.TimeTicks,
  OctetString: ObjectType.OctetString,
  ObjectIdentifier: ObjectType.OID,
  IpAddress: ObjectType.IpAddress,
};

/** The SMIv2 name of an ASN.1 tag, as errors and docs say it. */
export function typeName(tag: number | undefined): string {
  switch (tag) {
    case ObjectType.Integer32:
      return "Integer32";
    case ObjectType.Gauge32:
      return "Gauge32";
    case ObjectType.Counter32:
      return "Counter32";
    case ObjectType.Counter64:
      return "Counter64";
    case ObjectType.TimeTicks:
      return "TimeTicks";
    case ObjectType.OctetString:
      return "OctetString";
    case ObjectType.OID:
      return "ObjectIdentifier";
    case ObjectType.IpAddress:
      return "IpAddress";
    case ObjectType.Opaque:
      return "Opaque";
    case ObjectType.Boolean:
      return "Boolean";
    case ObjectType.Null:
      return "Null";
    case ObjectType.NoSuchObject:
      return "noSuchObject";
    case ObjectType.NoSuchInstance:
      return "noSuchInstance";
    case ObjectType.EndOfMibView:
      return "endOfMibView";
    default:
      return tag === undefined ? "no type" : `type ${tag}`;
  }
}

/** RFC 3416 §3: the exceptions a varbind may carry instead of a value. */
export function varbindException(varbind: Varbind): string | undefined {
  const tag = varbind.type;
  return tag === ObjectType.NoSuchObject ||
    tag === ObjectType.NoSuchInstance ||
    tag === ObjectType.EndOfMibView
    ? typeName(tag)
    : undefined;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });
// Text is what a person would type: no control characters but tab, CR and LF.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

/**
 * A varbind's value as JSON: integers of every kind as numbers (TimeTicks in hundredths of a
 * second, as on the wire), a Counter64 above 2^53 as its decimal digits, an OctetString as text
 * when it is UTF-8 without control characters and otherwise as hex bytes joined by `:` (a MAC
 * address reads `00:1a:2b:…`), an ObjectIdentifier and an IpAddress as their dotted text.
 */
export function decodeVarbind(varbind: Varbind): unknown {
  const value = varbind.value;
  switch (varbind.type) {
    case ObjectType.Counter64:
      return decodeUnsigned64(value);
    case ObjectType.OctetString:
    case ObjectType.Opaque:
      if (Buffer.isBuffer(value)) return varbind.type === ObjectType.Opaque ? hex(value) : octets(value);
      return value ?? null;
    case ObjectType.Null:
      return null;
    default:
      if (typeof value === "bigint") return decodeUnsigned64(value);
      if (Buffer.isBuffer(value)) return hex(value);
      return value ?? null;
  }
}

function decodeUnsigned64(value: unknown): number | string | null {
  let big: bigint;
  if (typeof value === "bigint") big = value;
  else if (typeof value === "number") big = BigInt(value);
  else if (Buffer.isBuffer(value)) big = value.length === 0 ? 0n : BigInt(`0x${value.toString("hex")}`);
  else return null;
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString();
}

function octets(bytes: Buffer): string {
  try {
    const text = UTF8.decode(bytes);
    if (!CONTROL.test(text)) return text;
  } catch {
    // Not UTF-8: bytes, shown as hex below.
  }
  return hex(bytes);
}

function hex(bytes: Buffer): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

const UINT32_MAX = 2 ** 32 - 1;
const OID = /^(?:0|[1-9]\d{0,9})(?:\.(?:0|[1-9]\d{0,9}))+$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** A dotted OID (`1.3.6.1.2.1.1.5.0`): at least two arcs, each a number below 2^32. */
export function isOid(text: string): boolean {
  return OID.test(text) && text.split(".").every((arc) => Number(arc) <= UINT32_MAX);
}

/**
 * The varbind value for a SET of `value` as `type`; a string saying why when the value cannot be
 * one (a value out of the type's range, a non-integer, text for a number).
 */
export function encodeForSet(
  type: SnmpSetType,
  value: unknown,
): { ok: true; tag: ObjectType; value: number | string | Buffer } | { ok: false; why: string } {
  const tag = SET_TAGS[type];
  switch (type) {
    case "Integer32":
      if (Number.isInteger(value) && (value as number) >= -(2 ** 31) && (value as number) <= 2 ** 31 - 1)
        return { ok: true, tag, value: value as number };
      return { ok: false, why: `${show(value)} is not an Integer32 (an integer from -2^31 to 2^31-1)` };
    case "Unsigned32":
    case "Gauge32":
    case "TimeTicks":
      if (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= UINT32_MAX)
        return { ok: true, tag, value: value as number };
      return { ok: false, why: `${show(value)} is not a ${type} (an integer from 0 to 2^32-1)` };
    case "OctetString":
      if (typeof value === "string") return { ok: true, tag, value: Buffer.from(value, "utf8") };
      if (value instanceof Uint8Array) return { ok: true, tag, value: Buffer.from(value) };
      return { ok: false, why: `${show(value)} is not an OctetString (a string)` };
    case "ObjectIdentifier":
      if (typeof value === "string" && isOid(value)) return { ok: true, tag, value };
      return { ok: false, why: `${show(value)} is not an ObjectIdentifier (dotted numbers)` };
    case "IpAddress":
      if (typeof value === "string" && IPV4.test(value)) return { ok: true, tag, value };
      return { ok: false, why: `${show(value)} is not an IpAddress (dotted IPv4)` };
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** The `snmp:type` name of an ASN.1 tag a GET answered with, when a SET can take it. */
export function setTypeOf(tag: number | undefined): SnmpSetType | undefined {
  for (const [name, known] of Object.entries(SET_TAGS)) {
    // Gauge32 and Unsigned32 share a tag: either name encodes the same.
    if (known === tag) return name as SnmpSetType;
  }
  return undefined;
}

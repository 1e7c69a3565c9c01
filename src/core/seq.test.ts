import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MAX_SEQ, parseSeq, parseSeqList, readInteger, type SeqSource } from "./seq.js";
import { ValidationError } from "./errors.js";

const PATH: SeqSource = { name: "seq", pointer: "/params/seq", min: 1 };
const HEADER: SeqSource = { name: "Last-Event-ID", pointer: "/headers/last-event-id", min: 0 };

function refusal(text: string, source: SeqSource): ValidationError {
  try {
    parseSeq(text, source);
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error(`${text} was taken`);
}

describe("parseSeq", () => {
  it("reads every seq from its minimum to 2^53 - 1 as the number written", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: MAX_SEQ }), (seq) => {
        expect(parseSeq(String(seq), PATH)).toBe(seq);
        expect(parseSeq(String(seq), HEADER)).toBe(seq);
      }),
    );
    expect(parseSeq("0", HEADER)).toBe(0);
  });

  it("refuses a seq past 2^53 - 1 as out of range, as written, naming where it came from", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: BigInt(MAX_SEQ) + 1n, max: 10n ** 30n }), (big) => {
        const error = refusal(String(big), PATH);
        expect(error.message).toBe(`seq ${big} is out of range: at most ${MAX_SEQ}`);
        expect(error.errors).toEqual([
          { pointer: "/params/seq", message: `is out of range: at most ${MAX_SEQ}` },
        ]);
      }),
    );
  });

  it("refuses any other form: a sign, a leading zero, spaces, a fraction, an exponent, hex, 0 from 1", () => {
    for (const text of ["", "-1", "+1", "01", "00", " 1", "1 ", "1.0", "1e3", "0x10", "١", "abc"]) {
      expect(refusal(text, HEADER).errors[0]?.pointer, text).toBe("/headers/last-event-id");
    }
    expect(refusal("0", PATH).message).toBe(
      'seq must be a whole number from 1, in decimal digits without a leading zero, not "0"',
    );
  });

  it("readInteger reads what it writes back, and nothing else", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..."0123456789-+. e"), maxLength: 20 }), (text) => {
        const value = readInteger(text);
        if (typeof value === "number") expect(String(value)).toBe(text);
        else expect(text === String(Number(text)) && Number.isSafeInteger(Number(text))).toBe(false);
      }),
    );
    expect(readInteger("-0")).toBe("form");
    expect(readInteger("-9007199254740993")).toBe("range");
  });
});

describe("parseSeqList", () => {
  const SEQS = { name: "seqs", pointer: "/query/seqs", maxItems: 3, max: 12345 };
  const detail = (text: string, source = SEQS): string => {
    try {
      parseSeqList(text, source);
    } catch (err) {
      if (err instanceof ValidationError) {
        expect(err.errors.map((e) => e.pointer)).toEqual(["/query/seqs"]);
        return err.message;
      }
      throw err;
    }
    throw new Error(`${text} was taken`);
  };

  it("reads every seq of a list, in its order, repeats kept", () => {
    expect(parseSeqList("3,1,3", SEQS)).toEqual([3, 1, 3]);
    expect(parseSeqList("12345", SEQS)).toEqual([12345]);
  });

  it("names the item that is wrong and what it must be", () => {
    expect(detail("1,2,x")).toBe('seqs item 3 ("x") must be a whole number from 1 to 12345');
    expect(detail("0")).toBe('seqs item 1 ("0") must be a whole number from 1 to 12345');
    expect(detail("1,-2")).toBe('seqs item 2 ("-2") must be a whole number from 1 to 12345');
    expect(detail("1.5")).toBe('seqs item 1 ("1.5") must be a whole number from 1 to 12345');
    expect(detail("1,12346")).toBe(
      'seqs item 2 ("12346") is past the tree of 12345 Changes: it must be a whole number from 1 to 12345',
    );
    expect(detail("1,,2")).toBe(
      "seqs item 2 is empty: seqs are separated by one comma, each a whole number from 1 to 12345",
    );
    expect(detail("1,9007199254740993")).toBe(
      'seqs item 2 ("9007199254740993") is past the tree of 12345 Changes: it must be a whole number from 1 to 12345',
    );
    expect(detail("")).toBe("seqs is empty: give 1 to 3 seqs separated by commas");
    expect(detail("1,2,3,4")).toBe("seqs lists 4 seqs: at most 3 in one request");
    expect(detail("1", { ...SEQS, max: 0 })).toBe("seqs names Changes, and the Log holds none yet");
  });
});

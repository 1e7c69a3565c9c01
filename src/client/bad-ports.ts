// The ports fetch never connects to, whatever listens there: browsers and Node.js (undici) alike.
// A hub on one of them runs, but neither the UI nor `things` can reach it.

/** Fetch standard §2.9 "port blocking" (https://fetch.spec.whatwg.org/#bad-port). */
const BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104,
  109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515,
  526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049,
  3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** Whether fetch refuses `port` as a "bad port" (and so every browser does). */
export function isBadPort(port: number): boolean {
  return BAD_PORTS.has(port);
}

/** Every bad port, in order (for tests that check the list against a fetch). */
export function badPorts(): number[] {
  return [...BAD_PORTS];
}

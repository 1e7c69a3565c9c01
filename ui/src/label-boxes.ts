// Where the graph's labels lie on the screen, as convex boxes: a node's label beside its disc, a
// link's along its line (turned with it), and whether two of them overlap (the separating axis
// theorem: two convex shapes are apart when a side of one of them has them on either side of it).

export interface Point {
  x: number;
  y: number;
}

/** A convex box: its corners in order. */
export type LabelBox = readonly Point[];

/** An upright box from its sides. */
export function uprightBox(left: number, top: number, right: number, bottom: number): LabelBox {
  return [
    { x: left, y: top },
    { x: right, y: top },
    { x: right, y: bottom },
    { x: left, y: bottom },
  ];
}

/** A box of `length` × `height` centred on `centre`, its length along `direction`. */
export function turnedBox(centre: Point, direction: Point, length: number, height: number): LabelBox {
  const norm = Math.hypot(direction.x, direction.y) || 1;
  const [ux, uy] = [direction.x / norm, direction.y / norm];
  const [ax, ay] = [(ux * length) / 2, (uy * length) / 2];
  const [bx, by] = [(-uy * height) / 2, (ux * height) / 2];
  return [
    { x: centre.x - ax - bx, y: centre.y - ay - by },
    { x: centre.x + ax - bx, y: centre.y + ay - by },
    { x: centre.x + ax + bx, y: centre.y + ay + by },
    { x: centre.x - ax + bx, y: centre.y - ay + by },
  ];
}

/** Whether some side of `a` has all of `a` on one side and all of `b` on the other. */
function separates(a: LabelBox, b: LabelBox): boolean {
  for (let i = 0; i < a.length; i++) {
    const p = a[i];
    const q = a[(i + 1) % a.length];
    if (p === undefined || q === undefined) continue;
    // The side's normal, and each box's extent along it.
    const [nx, ny] = [q.y - p.y, p.x - q.x];
    let [minA, maxA, minB, maxB] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const { x, y } of a) {
      const along = x * nx + y * ny;
      [minA, maxA] = [Math.min(minA, along), Math.max(maxA, along)];
    }
    for (const { x, y } of b) {
      const along = x * nx + y * ny;
      [minB, maxB] = [Math.min(minB, along), Math.max(maxB, along)];
    }
    if (maxA <= minB || maxB <= minA) return true;
  }
  return false;
}

/** Whether two boxes overlap (touching is not overlapping). */
export function boxesOverlap(a: LabelBox, b: LabelBox): boolean {
  return !separates(a, b) && !separates(b, a);
}

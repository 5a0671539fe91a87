// Diffs the panel computes on text it has not saved yet (the conflict dialog's three-way merge). Saved
// versions are compared by the server (GET .../report/diff), never here.

/** Longest-common-subsequence ops between two arrays: [{op: equal|delete|insert, items}]. */
export function diffOps(a, b) {
  const n = a.length;
  const m = b.length;
  const width = m + 1;
  const table = new Uint32Array((n + 1) * width); // table[i][j]: LCS length of a[i:], b[j:]
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i * width + j] = a[i] === b[j] ? table[(i + 1) * width + j + 1] + 1
        : Math.max(table[(i + 1) * width + j], table[i * width + j + 1]);
    }
  }
  const ops = [];
  const push = (op, item) => {
    if (ops.length && ops[ops.length - 1].op === op) ops[ops.length - 1].items.push(item);
    else ops.push({ op, items: [item] });
  };
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { push('equal', a[i]); i++; j++; } else if (table[(i + 1) * width + j] >= table[i * width + j + 1]) push('delete', a[i++]);
    else push('insert', b[j++]);
  }
  while (i < n) push('delete', a[i++]);
  while (j < m) push('insert', b[j++]);
  return ops;
}

/** Which index of `b` each matched index of `a` pairs with (LCS), as a Map. */
function matches(a, b) {
  const pairs = new Map();
  let i = 0;
  let j = 0;
  for (const { op, items } of diffOps(a, b)) {
    if (op === 'equal') for (let k = 0; k < items.length; k++) pairs.set(i++, j++);
    else if (op === 'delete') i += items.length;
    else j += items.length;
  }
  return pairs;
}

const same = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);

/** Three-way merge by lines: what changed on one side only is taken; where both sides changed the same
 * lines differently the chunk is a conflict for the reader. [{kind: 'ok', lines} | {kind: 'conflict',
 * base, mine, theirs}] */
export function merge3(baseText, mineText, theirsText) {
  const base = baseText.split('\n');
  const mine = mineText.split('\n');
  const theirs = theirsText.split('\n');
  const toMine = matches(base, mine);
  const toTheirs = matches(base, theirs);
  const chunks = [];
  const ok = (lines) => {
    if (!lines.length) return;
    const last = chunks[chunks.length - 1];
    if (last?.kind === 'ok') last.lines.push(...lines); else chunks.push({ kind: 'ok', lines: [...lines] });
  };
  const settle = (b, mi, th) => {
    if (b.length > 1 && mi.length === b.length && th.length === b.length) {
      // Line for line (adjacent lines edited on either side, the usual case in a report): settle each line.
      b.forEach((line, i) => settle([line], [mi[i]], [th[i]]));
      return;
    }
    if (same(mi, b)) ok(th);
    else if (same(th, b) || same(mi, th)) ok(mi);
    else chunks.push({ kind: 'conflict', base: b, mine: mi, theirs: th });
  };
  let b = 0;
  let x = 0;
  let y = 0;
  for (let k = 0; k < base.length; k++) {
    if (!toMine.has(k) || !toTheirs.has(k)) continue; // a stable line: unchanged on both sides
    settle(base.slice(b, k), mine.slice(x, toMine.get(k)), theirs.slice(y, toTheirs.get(k)));
    ok([base[k]]);
    b = k + 1;
    x = toMine.get(k) + 1;
    y = toTheirs.get(k) + 1;
  }
  settle(base.slice(b), mine.slice(x), theirs.slice(y));
  return chunks;
}

/** The merged text for the reader's choice per conflict: 'mine', 'theirs' or 'both' (mine, then theirs). */
export function mergedText(chunks, choices = []) {
  let n = 0;
  const lines = [];
  for (const chunk of chunks) {
    if (chunk.kind === 'ok') { lines.push(...chunk.lines); continue; }
    const choice = choices[n++] || 'both';
    if (choice !== 'theirs') lines.push(...chunk.mine);
    if (choice !== 'mine') lines.push(...chunk.theirs);
  }
  return lines.join('\n');
}

const TOKEN = /\S+\s*|\s+/g;

/** Word-level marks of `text` against `base`: [{op: equal|insert|delete, text}] with the layout kept. */
export function wordMarks(base, text) {
  const a = base.match(TOKEN) || [];
  const b = text.match(TOKEN) || [];
  const key = (t) => t.trim();
  const ops = diffOps(a.map(key), b.map(key));
  const out = [];
  let i = 0;
  let j = 0;
  for (const { op, items } of ops) {
    if (op === 'equal') { out.push({ op, text: b.slice(j, j + items.length).join('') }); i += items.length; j += items.length; } else if (op === 'delete') { out.push({ op, text: a.slice(i, i + items.length).join('') }); i += items.length; } else { out.push({ op, text: b.slice(j, j + items.length).join('') }); j += items.length; }
  }
  return out;
}

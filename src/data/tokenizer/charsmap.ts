// SentencePiece's precompiled character map (NormalizerSpec.precompiled_charsmap, and the "Precompiled"
// normalizer of HF tokenizer.json, which embeds the same bytes): a uint32 byte length, a Darts-clone
// double-array trie over UTF-8 byte strings, then NUL-terminated replacement strings the trie's values
// point into. Normalising takes, at each position, the longest match in the trie (its replacement), or one
// UTF-8 character as is (one malformed byte becomes U+FFFD).

export interface CharsMap {
  units: Uint32Array;
  replacements: Uint8Array;
}

export function parseCharsMap(blob: Uint8Array, where: string): CharsMap {
  if (blob.length <= 4) throw new Error(`${where}: the precompiled character map is ${blob.length} bytes, too short to hold its trie`);
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const trieBytes = dv.getUint32(0, true);
  if (trieBytes % 4 !== 0 || 4 + trieBytes > blob.length) {
    throw new Error(`${where}: the precompiled character map declares a ${trieBytes}-byte trie, which does not fit its ${blob.length} bytes`);
  }
  const units = new Uint32Array(trieBytes / 4);
  for (let i = 0; i < units.length; i++) units[i] = dv.getUint32(4 + 4 * i, true);
  return { units, replacements: blob.subarray(4 + trieBytes) };
}

// Darts-clone unit fields
const hasLeaf = (u: number) => ((u >>> 8) & 1) === 1;
const value = (u: number) => u & 0x7fffffff;
const label = (u: number) => u & 0x800000ff;
const offset = (u: number) => (u >>> 10) << ((u & (1 << 9)) >>> 6);

/** The longest trie key that prefixes bytes[at..]: [length, value], or null. */
export function longestMatch(units: Uint32Array, bytes: Uint8Array, at: number): [number, number] | null {
  if (units.length === 0) return null;
  let best: [number, number] | null = null;
  let node = offset(units[0]!);
  for (let i = at; i < bytes.length; i++) {
    const c = bytes[i]!;
    node ^= c;
    const u = units[node];
    if (u === undefined || label(u) !== c) break;
    node ^= offset(u);
    if (hasLeaf(u)) {
      const leaf = units[node];
      if (leaf === undefined) break;
      best = [i - at + 1, value(leaf)];
    }
  }
  return best;
}

/** Length of the valid UTF-8 character at bytes[at], or 0 when it is malformed. */
export function utf8CharLength(bytes: Uint8Array, at: number): number {
  const b = bytes[at]!;
  const n = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
  if (n === 0 || at + n > bytes.length) return 0;
  for (let k = 1; k < n; k++) if ((bytes[at + k]! & 0xc0) !== 0x80) return 0;
  let cp = n === 1 ? b : b & (0x7f >> n);
  for (let k = 1; k < n; k++) cp = (cp << 6) | (bytes[at + k]! & 0x3f);
  if ((n === 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) || (n === 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  return n;
}

const REPLACEMENT = [0xef, 0xbf, 0xbd];

/**
 * One normalisation step at bytes[at..]: the bytes it becomes and how many input bytes it consumes.
 * With no map, a character is copied as is.
 */
export function normalizePrefix(map: CharsMap | null, bytes: Uint8Array, at: number): [Uint8Array | number[], number] {
  const m = map ? longestMatch(map.units, bytes, at) : null;
  if (m) {
    const [len, v] = m;
    let end = v;
    while (end < map!.replacements.length && map!.replacements[end] !== 0) end++;
    return [map!.replacements.subarray(v, end), len];
  }
  const n = utf8CharLength(bytes, at);
  if (n === 0) return [REPLACEMENT, 1];
  return [bytes.subarray(at, at + n), n];
}

// HF `tokenizer.json` files with a BPE model (as LLaMA-family and SentencePiece-converted T5 tokenizers
// ship them): added tokens split off first, then the normalizer, the pre-tokenizer, and the BPE model
// (ranked merges, byte fallback, fused unknowns). The components such tokenizers use are implemented;
// any other is refused by name rather than ignored.
import { bpeMerge, bytePiece, chars } from './bpe.js';
import { normalizePrefix, parseCharsMap } from './charsmap.js';

type Json = Record<string, unknown>;
type Normalizer = (s: string) => string;
/** A pre-tokenizer maps one segment (and whether it starts the text) to words. */
type PreTokenizer = (s: string, first: boolean) => string[];

const utf8 = new TextEncoder();
const utf8dec = new TextDecoder();

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function pattern(p: unknown, where: string): RegExp | string {
  if (isObj(p) && typeof p.String === 'string') return p.String;
  if (isObj(p) && typeof p.Regex === 'string') {
    try {
      return new RegExp(p.Regex, 'gu');
    } catch (e) {
      throw new Error(`${where}: regex ${JSON.stringify(p.Regex)} is not one JavaScript can run: ${(e as Error).message}`);
    }
  }
  throw new Error(`${where}: pattern must be {"String": ...} or {"Regex": ...}, got ${JSON.stringify(p)}`);
}

function normalizerOf(spec: unknown, where: string): Normalizer {
  if (spec === null || spec === undefined) return (s) => s;
  if (!isObj(spec)) throw new Error(`${where}: expected an object`);
  const w = `${where} (${String(spec.type)})`;
  switch (spec.type) {
    case 'Sequence': {
      if (!Array.isArray(spec.normalizers)) throw new Error(`${w}: 'normalizers' must be a list`);
      const parts = spec.normalizers.map((n, i) => normalizerOf(n, `${where}.normalizers[${i}]`));
      return (s) => parts.reduce((acc, f) => f(acc), s);
    }
    case 'Prepend': {
      const pre = String(spec.prepend ?? '');
      return (s) => (s ? pre + s : s);
    }
    case 'Replace': {
      const pat = pattern(spec.pattern, w), content = String(spec.content ?? '');
      return (s) => (typeof pat === 'string' ? s.split(pat).join(content) : s.replace(pat, () => content));
    }
    case 'Strip': {
      const left = spec.strip_left !== false, right = spec.strip_right !== false;
      return (s) => (left && right ? s.trim() : left ? s.trimStart() : right ? s.trimEnd() : s);
    }
    case 'NFC': case 'NFD': case 'NFKC': case 'NFKD': {
      const form = spec.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'Precompiled': {
      if (typeof spec.precompiled_charsmap !== 'string') throw new Error(`${w}: 'precompiled_charsmap' must be a base64 string`);
      const blob = Uint8Array.from(Buffer.from(spec.precompiled_charsmap, 'base64'));
      const map = blob.length ? parseCharsMap(blob, w) : null;
      return (s) => {
        const input = utf8.encode(s), out: number[] = [];
        for (let p = 0; p < input.length;) {
          const [b, n] = normalizePrefix(map, input, p);
          for (let k = 0; k < b.length; k++) out.push(b[k]!);
          p += n;
        }
        return utf8dec.decode(Uint8Array.from(out));
      };
    }
    default:
      throw new Error(`${w}: this normalizer is not supported (supported: Sequence, Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, Lowercase, Precompiled)`);
  }
}

function preTokenizerOf(spec: unknown, where: string): PreTokenizer {
  if (spec === null || spec === undefined) return (s) => (s ? [s] : []);
  if (!isObj(spec)) throw new Error(`${where}: expected an object`);
  const w = `${where} (${String(spec.type)})`;
  switch (spec.type) {
    case 'Sequence': {
      if (!Array.isArray(spec.pretokenizers)) throw new Error(`${w}: 'pretokenizers' must be a list`);
      const parts = spec.pretokenizers.map((p, i) => preTokenizerOf(p, `${where}.pretokenizers[${i}]`));
      return (s, first) => parts.reduce<string[]>((words, f) => words.flatMap((x, i) => f(x, first && i === 0)), [s]);
    }
    case 'Metaspace': {
      const rep = String(spec.replacement ?? '\u2581');
      // prepend_scheme (newer files) or add_prefix_space (older ones)
      const scheme = typeof spec.prepend_scheme === 'string' ? spec.prepend_scheme : spec.add_prefix_space === false ? 'never' : 'always';
      if (!['always', 'first', 'never'].includes(scheme)) throw new Error(`${w}: unknown prepend_scheme '${scheme}'`);
      const split = spec.split !== false;
      return (s, first) => {
        let t = s.split(' ').join(rep);
        if (t && !t.startsWith(rep) && (scheme === 'always' || (scheme === 'first' && first))) t = rep + t;
        if (!split) return t ? [t] : [];
        const words: string[] = [];
        let cur = '';
        for (const c of chars(t)) {
          if (c === rep && cur) {
            words.push(cur);
            cur = '';
          }
          cur += c;
        }
        if (cur) words.push(cur);
        return words;
      };
    }
    case 'WhitespaceSplit':
      return (s) => s.split(/\s+/u).filter((x) => x);
    default:
      throw new Error(`${w}: this pre-tokenizer is not supported (supported: Sequence, Metaspace, WhitespaceSplit)`);
  }
}

interface AddedToken {
  id: number;
  content: string;
}

export class HfTokenizer {
  private readonly vocab = new Map<string, number>();
  private readonly ranks = new Map<string, number>();
  private readonly pieces: string[] = [];
  private readonly added: AddedToken[];
  private readonly normalize: Normalizer;
  private readonly preTokenize: PreTokenizer;
  private readonly byteFallback: boolean;
  private readonly fuseUnk: boolean;
  readonly unkId: number | undefined;

  constructor(json: unknown, readonly where: string) {
    if (!isObj(json)) throw new Error(`${where}: expected a JSON object (an HF tokenizer.json)`);
    const model = json.model;
    if (!isObj(model)) throw new Error(`${where}: no 'model' object`);
    if (model.type !== 'BPE') throw new Error(`${where}: model type ${JSON.stringify(model.type)} is not supported; lavender reads BPE tokenizers (as the LLaMA tokenizer that pile-t5 uses)`);
    for (const k of ['continuing_subword_prefix', 'end_of_word_suffix']) {
      if (model[k] !== null && model[k] !== undefined && model[k] !== '') throw new Error(`${where}: model.${k} (${JSON.stringify(model[k])}) is not supported`);
    }
    if (!isObj(model.vocab)) throw new Error(`${where}: model.vocab must be an object of piece -> id`);
    for (const [piece, id] of Object.entries(model.vocab)) {
      if (!Number.isInteger(id) || (id as number) < 0) throw new Error(`${where}: model.vocab['${piece}'] must be a non-negative integer id, got ${JSON.stringify(id)}`);
      this.vocab.set(piece, id as number);
      this.pieces[id as number] = piece;
    }
    if (!Array.isArray(model.merges)) throw new Error(`${where}: model.merges must be a list`);
    model.merges.forEach((m, rank) => {
      // "a b" (older files) or ["a", "b"]
      const pair = typeof m === 'string' ? splitMerge(m) : Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string') ? (m as [string, string]) : null;
      if (!pair) throw new Error(`${where}: model.merges[${rank}] must be "a b" or ["a", "b"], got ${JSON.stringify(m)}`);
      const key = `${pair[0]}\u0000${pair[1]}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    this.byteFallback = model.byte_fallback === true;
    this.fuseUnk = model.fuse_unk === true;
    const unk = typeof model.unk_token === 'string' ? this.vocab.get(model.unk_token) : undefined;
    if (typeof model.unk_token === 'string' && unk === undefined) throw new Error(`${where}: model.unk_token '${model.unk_token}' is not in the vocabulary`);
    this.unkId = unk;
    const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
    this.added = added.map((t, i) => {
      if (!isObj(t) || typeof t.content !== 'string' || !Number.isInteger(t.id)) throw new Error(`${where}: added_tokens[${i}] needs 'id' and 'content'`);
      this.pieces[t.id as number] ??= t.content;
      return { id: t.id as number, content: t.content };
    }).sort((a, b) => b.content.length - a.content.length);
    this.normalize = normalizerOf(json.normalizer, `${where}: normalizer`);
    this.preTokenize = preTokenizerOf(json.pre_tokenizer, `${where}: pre_tokenizer`);
  }

  get size(): number {
    return this.pieces.length;
  }

  pieceToId(piece: string): number | undefined {
    return this.vocab.get(piece) ?? this.added.find((a) => a.content === piece)?.id;
  }

  idToPiece(id: number): string {
    const p = this.pieces[id];
    if (p === undefined) throw new Error(`${this.where}: id ${id} is not in the vocabulary`);
    return p;
  }

  /** Token ids of `text`, without the post-processor's special tokens. */
  encode(text: string): number[] {
    const ids: number[] = [];
    let first = true;
    for (const seg of this.splitAdded(text)) {
      if (typeof seg === 'number') {
        ids.push(seg);
        first = false;
        continue;
      }
      for (const word of this.preTokenize(this.normalize(seg), first)) this.encodeWord(word, ids);
      first = false;
    }
    return ids;
  }

  /** Text split around added tokens (their ids), longest token first at each position. */
  private splitAdded(text: string): Array<string | number> {
    if (!this.added.length) return [text];
    const out: Array<string | number> = [];
    let start = 0;
    for (let i = 0; i < text.length;) {
      const hit = this.added.find((a) => text.startsWith(a.content, i));
      if (hit) {
        if (i > start) out.push(text.slice(start, i));
        out.push(hit.id);
        i += hit.content.length;
        start = i;
      } else i++;
    }
    if (start < text.length) out.push(text.slice(start));
    return out;
  }

  private encodeWord(word: string, ids: number[]): void {
    const symbols: string[] = [], frozen: boolean[] = [];
    for (const c of chars(word)) {
      if (this.vocab.has(c)) {
        symbols.push(c);
        frozen.push(false);
      } else if (this.byteFallback && [...utf8.encode(c)].every((b) => this.vocab.has(bytePiece(b)))) {
        for (const b of utf8.encode(c)) {
          symbols.push(bytePiece(b));
          frozen.push(true);
        }
      } else {
        symbols.push(c);
        frozen.push(true); // unknown
      }
    }
    const merged = bpeMerge(symbols, (l, r) => this.ranks.get(`${l}\u0000${r}`), frozen);
    let prevUnk = false;
    for (const s of merged) {
      const id = this.vocab.get(s);
      if (id !== undefined) {
        ids.push(id);
        prevUnk = false;
        continue;
      }
      if (this.unkId === undefined) throw new Error(`${this.where}: '${s}' is not in the vocabulary and the model has no unk_token`);
      if (!(this.fuseUnk && prevUnk)) ids.push(this.unkId);
      prevUnk = true;
    }
  }
}

/** "a b" -> ["a", "b"] (pieces contain no plain space: SentencePiece spells it ▁). */
function splitMerge(m: string): [string, string] | null {
  const i = m.indexOf(' ', 1);
  return i < 0 ? null : [m.slice(0, i), m.slice(i + 1)];
}

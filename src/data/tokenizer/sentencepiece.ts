// SentencePiece model files (`spiece.model`, `tokenizer.model`: a ModelProto protocol buffer) and their
// BPE encoding, as the C++ library does it: normalise (precompiled character map, whitespace rules, the
// dummy "▁" prefix), split into characters (user-defined pieces whole), merge pairs by the merged piece's
// score, map each symbol to its id; an unknown symbol becomes its UTF-8 bytes' <0xXX> pieces under byte
// fallback, else one <unk> per run. The LLaMA tokenizer that pile-t5 uses is such a model.
import { bpeMerge, bytePiece } from './bpe.js';
import { normalizePrefix, parseCharsMap, type CharsMap } from './charsmap.js';
import { pb, readFields } from './protobuf.js';

export const enum PieceType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 }
const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };

export interface Piece {
  piece: string;
  score: number;
  type: PieceType;
}

export interface SentencePieceModel {
  pieces: Piece[];
  modelType: string;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  normalizerName: string;
  charsMap: CharsMap | null;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

/** Parse a ModelProto; `where` names the file in errors. */
export function parseSentencePieceModel(bytes: Uint8Array, where: string): SentencePieceModel {
  const m: SentencePieceModel = {
    pieces: [], modelType: 'UNIGRAM', byteFallback: false, treatWhitespaceAsSuffix: false, normalizerName: '',
    charsMap: null, addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true,
  };
  for (const f of readFields(bytes, where)) {
    if (f.number === 1) {
      const w = `${where}: piece ${m.pieces.length}`;
      const p: Piece = { piece: '', score: 0, type: PieceType.NORMAL };
      for (const g of readFields(pb.bytes(f, w), w)) {
        if (g.number === 1) p.piece = pb.string(g, w);
        else if (g.number === 2) p.score = pb.float(g, w);
        else if (g.number === 3) p.type = pb.int(g, w) as PieceType;
      }
      if (!p.piece) throw new Error(`${w}: the piece is empty`);
      if (p.type < 1 || p.type > 6) throw new Error(`${w} ('${p.piece}'): unknown piece type ${p.type}`);
      m.pieces.push(p);
    } else if (f.number === 2) {
      const w = `${where}: trainer_spec`;
      for (const g of readFields(pb.bytes(f, w), w)) {
        if (g.number === 3) m.modelType = MODEL_TYPES[pb.int(g, w)] ?? `type ${pb.int(g, w)}`;
        else if (g.number === 35) m.byteFallback = pb.bool(g, w);
        else if (g.number === 24) m.treatWhitespaceAsSuffix = pb.bool(g, w);
      }
    } else if (f.number === 3) {
      const w = `${where}: normalizer_spec`;
      for (const g of readFields(pb.bytes(f, w), w)) {
        if (g.number === 1) m.normalizerName = pb.string(g, w);
        else if (g.number === 2) {
          const blob = pb.bytes(g, w);
          m.charsMap = blob.length ? parseCharsMap(blob, w) : null;
        } else if (g.number === 3) m.addDummyPrefix = pb.bool(g, w);
        else if (g.number === 4) m.removeExtraWhitespaces = pb.bool(g, w);
        else if (g.number === 5) m.escapeWhitespaces = pb.bool(g, w);
      }
    }
  }
  if (m.pieces.length === 0) throw new Error(`${where}: no pieces: not a SentencePiece model`);
  return m;
}

const SPACE = '\u2581';
const utf8 = new TextEncoder();
const utf8dec = new TextDecoder();

export class SentencePieceTokenizer {
  /** NORMAL, USER_DEFINED and UNUSED pieces: what merges may produce. */
  private readonly normal = new Map<string, number>();
  /** UNKNOWN, CONTROL and BYTE pieces, looked up first. */
  private readonly reserved = new Map<string, number>();
  private readonly userDefined: string[];
  readonly unkId: number;

  constructor(readonly model: SentencePieceModel, readonly where: string) {
    if (model.modelType !== 'BPE') {
      throw new Error(`${where}: model_type ${model.modelType} is not supported; lavender reads BPE SentencePiece models (as the LLaMA tokenizer that pile-t5 uses)`);
    }
    let unk = -1;
    const bytes = new Set<string>();
    model.pieces.forEach((p, i) => {
      const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const map = normal ? this.normal : this.reserved;
      if (map.has(p.piece)) throw new Error(`${where}: piece '${p.piece}' (id ${i}) is defined twice`);
      map.set(p.piece, i);
      if (p.type === PieceType.UNKNOWN) {
        if (unk >= 0) throw new Error(`${where}: two unknown pieces (ids ${unk} and ${i})`);
        unk = i;
      }
      if (p.type === PieceType.BYTE) {
        if (!model.byteFallback) throw new Error(`${where}: byte piece '${p.piece}' (id ${i}) but byte_fallback is off`);
        bytes.add(p.piece);
      }
    });
    if (unk < 0) throw new Error(`${where}: no unknown piece (<unk>) is defined`);
    if (model.byteFallback && bytes.size !== 256) throw new Error(`${where}: byte_fallback is on but ${bytes.size} of the 256 byte pieces <0x00>..<0xFF> are defined`);
    this.unkId = unk;
    // longest first, for the greedy prefix match
    this.userDefined = model.pieces.filter((p) => p.type === PieceType.USER_DEFINED).map((p) => p.piece).sort((a, b) => b.length - a.length);
  }

  get size(): number {
    return this.model.pieces.length;
  }

  /** The id of a piece (reserved pieces first), or unk. */
  pieceToId(piece: string): number {
    return this.reserved.get(piece) ?? this.normal.get(piece) ?? this.unkId;
  }

  idToPiece(id: number): string {
    const p = this.model.pieces[id];
    if (!p) throw new Error(`${this.where}: id ${id} is outside the vocabulary (0..${this.size - 1})`);
    return p.piece;
  }

  private userDefinedAt(text: string, at: number): string | undefined {
    for (const u of this.userDefined) if (text.startsWith(u, at)) return u;
    return undefined;
  }

  /** The normalised text the model segments ("▁" for spaces, the dummy prefix, the character map). */
  normalize(text: string): string {
    const m = this.model;
    if (text.length === 0) return '';
    const input = utf8.encode(text);
    const out: number[] = [];
    const space = m.escapeWhitespaces ? Array.from(utf8.encode(SPACE)) : [0x20];
    let p = 0;
    // one step: a user-defined piece whole (not normalised), else the character map
    const step = (): [ArrayLike<number>, number] => {
      if (this.userDefined.length) {
        const s = utf8dec.decode(input.subarray(p, p + 64 * 4));
        const u = this.userDefinedAt(s, 0);
        if (u) {
          const b = utf8.encode(u);
          return [b, b.length];
        }
      }
      return normalizePrefix(m.charsMap, input, p);
    };
    if (m.removeExtraWhitespaces) {
      while (p < input.length) {
        const [s, n] = step();
        if (!(s.length === 1 && s[0] === 0x20)) break;
        p += n;
      }
    }
    if (p >= input.length) return '';
    if (!m.treatWhitespaceAsSuffix && m.addDummyPrefix) out.push(...space);
    let prevSpace = m.removeExtraWhitespaces;
    while (p < input.length) {
      const [s, n] = step();
      let k = 0;
      while (prevSpace && k < s.length && s[k] === 0x20) k++;
      if (k < s.length) {
        for (; k < s.length; k++) {
          if (m.escapeWhitespaces && s[k] === 0x20) out.push(...space);
          else out.push(s[k]!);
        }
        prevSpace = s[s.length - 1] === 0x20;
      }
      p += n;
      if (!m.removeExtraWhitespaces) prevSpace = false;
    }
    if (m.removeExtraWhitespaces) {
      while (out.length >= space.length && space.every((b, i) => out[out.length - space.length + i] === b)) out.length -= space.length;
    }
    if (m.treatWhitespaceAsSuffix && m.addDummyPrefix) out.push(...space);
    return utf8dec.decode(Uint8Array.from(out));
  }

  /** Token ids of `text` (no BOS/EOS). */
  encode(text: string): number[] {
    const normalized = this.normalize(text);
    if (!normalized) return [];
    // characters, user-defined pieces whole (and frozen)
    const symbols: string[] = [], frozen: boolean[] = [];
    for (let at = 0; at < normalized.length;) {
      const u = this.userDefined.length ? this.userDefinedAt(normalized, at) : undefined;
      const s = u ?? String.fromCodePoint(normalized.codePointAt(at)!);
      symbols.push(s);
      frozen.push(u !== undefined);
      at += s.length;
    }
    const pieces = this.model.pieces;
    const revMerge = new Map<string, [string, string]>();
    const merged = bpeMerge(symbols, (l, r) => {
      const id = this.normal.get(l + r);
      return id === undefined ? undefined : -pieces[id]!.score;
    }, frozen, (s, l, r) => {
      if (pieces[this.normal.get(s)!]!.type === PieceType.UNUSED) revMerge.set(s, [l, r]);
    });
    // an unused piece is split back into what it was merged from
    const resegment = (w: string, out: string[]): void => {
      const id = this.normal.get(w);
      const rev = id !== undefined && pieces[id]!.type === PieceType.UNUSED ? revMerge.get(w) : undefined;
      if (!rev) out.push(w);
      else {
        resegment(rev[0], out);
        resegment(rev[1], out);
      }
    };
    const final: string[] = [];
    for (const w of merged) resegment(w, final);
    const ids: number[] = [];
    let prevUnk = false;
    for (const w of final) {
      const id = this.pieceToId(w);
      const unk = id === this.unkId;
      if (unk && this.model.byteFallback) {
        for (const b of utf8.encode(w)) ids.push(this.pieceToId(bytePiece(b)));
      } else if (!(unk && prevUnk)) {
        ids.push(id); // a run of unknown symbols is one <unk>
      }
      prevUnk = unk;
    }
    return ids;
  }
}

// The text side of a T5 folder: its tokenizer (tokenizer.json, else the SentencePiece model) and the
// encoding the release feeds the T5 encoder: ids + EOS, truncated to max_length (EOS kept last), padded.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HfTokenizer } from './hf-tokenizer.js';
import { parseSentencePieceModel, SentencePieceTokenizer } from './sentencepiece.js';

export { HfTokenizer } from './hf-tokenizer.js';
export { parseSentencePieceModel, SentencePieceTokenizer } from './sentencepiece.js';

export interface Tokenizer {
  /** Token ids of the text, no special tokens added. */
  encode(text: string): number[];
  pieceToId(piece: string): number | undefined;
  idToPiece(id: number): string;
  readonly size: number;
  /** The file it was read from. */
  readonly where: string;
}

/** The files a tokenizer is looked for in, in order (HF's fast tokenizer first, as AutoTokenizer does). */
export const TOKENIZER_FILES = ['tokenizer.json', 'spiece.model', 'tokenizer.model'];

/** A SentencePiece model file or an HF tokenizer.json. */
export function loadTokenizerFile(path: string): Tokenizer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: cannot read the tokenizer (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (path.endsWith('.json')) {
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (e) {
      throw new Error(`${path}: invalid JSON (${(e as Error).message})`);
    }
    return new HfTokenizer(json, path);
  }
  return new SentencePieceTokenizer(parseSentencePieceModel(bytes, path), path);
}

/** The tokenizer of a model folder; names the folder and the files looked for when there is none. */
export function loadTokenizer(dir: string): Tokenizer {
  for (const f of TOKENIZER_FILES) {
    const p = join(dir, f);
    if (existsSync(p)) return loadTokenizerFile(p);
  }
  throw new Error(`${dir}: no tokenizer in the folder (looked for ${TOKENIZER_FILES.join(', ')})`);
}

export interface T5Encoding {
  inputIds: number[];
  attentionMask: number[];
  /** Tokens of the prompt dropped to fit max_length (0 when it fit). */
  truncated: number;
}

/**
 * What HF's T5 tokenizer gives with padding='max_length', truncation=True: the prompt's ids cut to
 * maxLength - 1, then EOS, then padId up to maxLength; the mask is 1 on the ids and EOS.
 */
export function encodeForT5(tok: Tokenizer, text: string, o: { maxLength: number; eosId: number; padId: number }): T5Encoding {
  if (!Number.isInteger(o.maxLength) || o.maxLength < 1) throw new Error(`encodeForT5: max_length must be a positive integer, got ${o.maxLength}`);
  const ids = tok.encode(text);
  const keep = Math.min(ids.length, o.maxLength - 1);
  const inputIds = [...ids.slice(0, keep), o.eosId];
  const attentionMask = inputIds.map(() => 1);
  while (inputIds.length < o.maxLength) {
    inputIds.push(o.padId);
    attentionMask.push(0);
  }
  return { inputIds, attentionMask, truncated: ids.length - keep };
}

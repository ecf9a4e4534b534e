// Prompts -> T5 embeddings, as the release conditions the MMDiT: the folder's tokenizer, EOS appended,
// cut to max_length (EOS kept), padded, the encoder's last hidden state multiplied by the mask.
import { encodeForT5, loadTokenizer, type Tokenizer } from '../data/tokenizer/index.js';
import { loadT5Encoder, type T5Encoder } from '../models/t5.js';
import { noGrad } from '../autograd/grad-mode.js';
import { tensor } from '../ops/creation.js';
import type { Tensor } from '../tensor/tensor.js';

export interface TextEncoder {
  model: T5Encoder;
  tokenizer: Tokenizer;
  eosId: number;
  padId: number;
  dir: string;
}

/** The tokenizer and the T5 encoder of an HF folder; `padId` overrides config.json's pad_token_id. */
export function loadTextEncoder(dir: string, o: { device?: string; padId?: number } = {}): TextEncoder {
  const tokenizer = loadTokenizer(dir); // first: a missing tokenizer fails before gigabytes are read
  const model = loadT5Encoder(dir, o.device ?? 'cpu');
  const c = model.config;
  if (tokenizer.size > c.vocab_size) {
    throw new Error(`${dir}: the tokenizer (${tokenizer.where}) has ${tokenizer.size} tokens but the encoder's vocabulary is ${c.vocab_size} (config.json vocab_size): not a matching pair`);
  }
  const padId = o.padId ?? c.pad_token_id;
  if (!Number.isInteger(padId) || padId < 0 || padId >= c.vocab_size) throw new Error(`${dir}: pad id ${padId} is outside the vocabulary (0..${c.vocab_size - 1})`);
  return { model, tokenizer, eosId: c.eos_token_id, padId, dir };
}

export interface EncodedText {
  /** int64 [B, N] */
  inputIds: Tensor;
  /** int64 [B, N] */
  attentionMask: Tensor;
  /** float32 [B, N, d_model], zero on padding */
  embeddings: Tensor;
  /** Tokens cut from each prompt to fit max_length (0 when it fit). */
  truncated: number[];
}

/** Encode prompts to [B, maxLength] ids and [B, maxLength, d_model] masked embeddings. */
export function encodeText(te: TextEncoder, prompts: readonly string[], maxLength: number): EncodedText {
  const device = te.model.shared.weight.device;
  const enc = prompts.map((p) => encodeForT5(te.tokenizer, p, { maxLength, eosId: te.eosId, padId: te.padId }));
  const B = prompts.length;
  const inputIds = tensor(enc.flatMap((e) => e.inputIds), { shape: [B, maxLength], dtype: 'int64', device });
  const attentionMask = tensor(enc.flatMap((e) => e.attentionMask), { shape: [B, maxLength], dtype: 'int64', device });
  const embeddings = noGrad(() => te.model.forward(inputIds, attentionMask));
  return { inputIds, attentionMask, embeddings, truncated: enc.map((e) => e.truncated) };
}

/** The warning for a prompt cut to max_length. */
export function truncationNote(prompt: string, cut: number, maxLength: number): string {
  const shown = prompt.length > 40 ? `${prompt.slice(0, 37)}...` : prompt;
  return `the prompt ${JSON.stringify(shown)} is ${maxLength - 1 + cut} tokens; kept the first ${maxLength - 1} and EOS (max length ${maxLength}), dropped ${cut}`;
}

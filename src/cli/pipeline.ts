// `lavender encode-text`, `decode-latents`, `encode-images`: the T5 and SDXL-VAE ends of the pipeline
// as separate steps, reading and writing safetensors.
import { saveSafetensors } from '../io/safetensors.js';
import { scope } from '../tensor/scope.js';
import { encodeText, loadTextEncoder, truncationNote } from '../train/text-encoder.js';
import { intFlag, stringFlag, type Parsed } from './args.js';

/** The value of a required flag, or an error naming the command and the flag. */
export function required(p: Parsed, command: string, name: string): string {
  const v = stringFlag(p, name, '');
  if (!v) throw new Error(`${command}: --${name} is required`);
  return v;
}

export function encodeTextCommand(p: Parsed): number {
  const dir = required(p, 'encode-text', 't5');
  const out = required(p, 'encode-text', 'out');
  if (!p.flags.has('prompt')) throw new Error('encode-text: --prompt TEXT is required (--prompt "" encodes the empty prompt)');
  const prompt = p.flags.get('prompt') === true ? '' : String(p.flags.get('prompt'));
  const maxLength = intFlag(p, 'max-length', 128);
  scope(() => {
    const te = loadTextEncoder(dir, { device: stringFlag(p, 'backend', 'cpu'), padId: p.flags.has('pad-id') ? intFlag(p, 'pad-id', 0, true) : undefined });
    const r = encodeText(te, [prompt], maxLength);
    if (r.truncated[0]) process.stderr.write(`encode-text: ${truncationNote(prompt, r.truncated[0], maxLength)}\n`);
    saveSafetensors(out, { input_ids: r.inputIds, attention_mask: r.attentionMask, embeddings: r.embeddings }, {
      source: 'lavender encode-text', t5: dir, prompt, max_length: String(maxLength), pad_id: String(te.padId),
    });
  });
  process.stderr.write(`wrote input_ids, attention_mask [1, ${maxLength}] and embeddings to ${out}\n`);
  return 0;
}

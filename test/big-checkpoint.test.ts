// Checkpoints larger than 2 GiB (beyond readFileSync and a single read): a safetensors file and a .pt
// archive of 3.3 GB are written and read back, the last tensor lying wholly past byte 2^31. One 800 MiB
// tensor is saved four times under different names, so memory stays near the size read back (~4 GB).
// The files are removed afterwards, also when the test fails.
//
// About 30 s per format on a 2-core machine, too slow for `npm test`: it runs with LAVENDER_BIG_TESTS=1
// (`npm run test:big`) and is skipped otherwise.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as L from '../src/index.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { loadTorchCheckpoint } from '../src/io/torch-pt.js';
import { saveTorchCheckpoint } from '../src/io/torch-pt-write.js';

const dir = mkdtempSync(join(tmpdir(), 'lavender-big-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const N = 400 * 2 ** 20; // bfloat16 elements: 800 MiB per tensor, 3.1 GiB per file

/** bfloat16 bits that differ along the tensor (so a misplaced chunk shows). */
function pattern(): L.Tensor {
  const bits = new Uint16Array(N);
  for (let i = 0; i < N; i++) bits[i] = (i * 2654435761) >>> 20;
  const t = L.zeros([N / 1024, 1024], { dtype: 'bfloat16' });
  t.backend.write(t.storage.buf, bits);
  return t;
}

function sameBits(a: L.Tensor, b: L.Tensor, what: string): void {
  assert.equal(a.dtype, b.dtype, what);
  assert.deepEqual([...a.shape], [...b.shape], what);
  const x = a.backend.read(a.storage.buf), y = b.backend.read(b.storage.buf);
  assert.equal(x.length, y.length, what);
  for (let i = 0; i < x.length; i += 1) if (x[i] !== y[i]) assert.fail(`${what}: element ${i} is ${y[i]}, expected ${x[i]}`);
}

describe('checkpoints over 2 GiB', { timeout: 600_000, skip: process.env.LAVENDER_BIG_TESTS ? false : 'set LAVENDER_BIG_TESTS=1 (npm run test:big)' }, () => {
  for (const kind of ['safetensors', 'pt'] as const) {
    test(`${kind}: a 3.1 GiB file round trips, the tensor past 2^31 included`, () => {
      const path = join(dir, `big.${kind}`);
      L.scope(() => {
        const t = pattern();
        const tensors = { a: t, b: t, c: t, d: t };
        if (kind === 'safetensors') saveSafetensors(path, tensors);
        else saveTorchCheckpoint(path, tensors);
        assert.ok(statSync(path).size - 2 * N > 2 ** 31, `${path} is ${statSync(path).size} bytes`);
        // the last tensor alone (its bytes start past 2^31), then the whole file
        const only = kind === 'safetensors' ? loadSafetensors(path, { only: (n) => n === 'd' }).tensors : loadTorchCheckpoint(path, { only: (n) => n === 'd' });
        assert.deepEqual(Object.keys(only), ['d']);
        sameBits(t, only.d!, `${kind} 'd'`);
        only.d!.dispose();
        const all = kind === 'safetensors' ? loadSafetensors(path).tensors : loadTorchCheckpoint(path);
        assert.deepEqual(Object.keys(all).sort(), ['a', 'b', 'c', 'd']);
        for (const k of ['a', 'b', 'c', 'd']) {
          sameBits(t, all[k]!, `${kind} '${k}'`);
          all[k]!.dispose();
        }
      });
      rmSync(path, { force: true });
    });
  }
});

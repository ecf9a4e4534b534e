// The cpu backend's WebAssembly kernels, one module: gemm, elementwise, row, optimizer and attention
// kernels over one (shared) memory that also holds every cpu tensor. The host publishes a job (its
// parameters in the job block, see common.ts) and every participating thread calls runTask for the
// task numbers it claims; the job's first parameter selects the kernel.
import { pi } from './common';
import { gemmTask } from './gemm';
import { binaryTask, copyTask, sumTask, unaryTask } from './elementwise';
import { layerNormBackwardTask, layerNormTask, siluBackwardTask, softmaxBackwardTask, softmaxTask } from './rows';
import { adamTask, sgdTask } from './optim';
import { attentionBackwardTask, attentionForwardTask } from './attention';
import { rotaryTask, swigluBackwardTask, swigluTask } from './fused';

export { initConstants, expf32 } from './common';
export { mr, nr, relaxed } from './gemm';
export { attentionScratch } from './attention';

// Job kinds (keep in step with src/backends/cpu/fast/kernels.ts).
const GEMM = 1, GEMM_BATCHED = 2, UNARY = 3, BINARY = 4, COPY = 5, SUM = 6, SOFTMAX = 7, SOFTMAX_BWD = 8,
  LAYERNORM = 9, LAYERNORM_BWD = 10, SILU_BWD = 11, ADAM = 12, SGD = 13, ATTN_FWD = 14, ATTN_BWD = 15,
  SWIGLU = 16, SWIGLU_BWD = 17, ROTARY = 18;

/** Runs task `t` of the job at `job`, on thread slot `slot` (its private scratch). */
export function runTask(job: usize, t: i32, slot: i32): void {
  switch (pi(job, 0)) {
    case GEMM: gemmTask(job, t, slot, false); break;
    case GEMM_BATCHED: gemmTask(job, t, slot, true); break;
    case UNARY: unaryTask(job, t, slot); break;
    case BINARY: binaryTask(job, t, slot); break;
    case COPY: copyTask(job, t, slot); break;
    case SUM: sumTask(job, t, slot); break;
    case SOFTMAX: softmaxTask(job, t); break;
    case SOFTMAX_BWD: softmaxBackwardTask(job, t); break;
    case LAYERNORM: layerNormTask(job, t); break;
    case LAYERNORM_BWD: layerNormBackwardTask(job, t); break;
    case SILU_BWD: siluBackwardTask(job, t); break;
    case ADAM: adamTask(job, t); break;
    case SGD: sgdTask(job, t); break;
    case ATTN_FWD: attentionForwardTask(job, t, slot); break;
    case ATTN_BWD: attentionBackwardTask(job, t, slot); break;
    case SWIGLU: swigluTask(job, t); break;
    case SWIGLU_BWD: swigluBackwardTask(job, t); break;
    case ROTARY: rotaryTask(job, t); break;
    default: unreachable();
  }
}

// The cards' dense bf16 tensor-core peaks, for MFU in the GPU benches: the training loop's own table.
export { peakBf16Tflops } from '../../src/train/throughput.js';

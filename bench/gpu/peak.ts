// The cards' dense bf16 tensor-core peaks (no sparsity), by device name, for MFU in the GPU benches.
export function peakBf16Tflops(name: string): number {
  if (/H200|H100.*(SXM|HBM3)|GH200/i.test(name)) return 989;
  if (/H100/i.test(name)) return 756; // PCIe
  if (/A100/i.test(name)) return 312;
  if (/L40S/i.test(name)) return 362;
  return NaN;
}

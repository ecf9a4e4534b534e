// The command stream between the webgpu backend (which owns buffer ids and writes WGSL) and the engine
// (which owns the GPUDevice). In Node the engine runs in a worker thread and commands travel by
// postMessage; in a browser the engine runs in the same thread. Either way the stream is the same.

export type Command =
  | { t: 'alloc'; id: number; bytes: number }
  | { t: 'free'; id: number }
  | { t: 'write'; id: number; byteOffset: number; data: ArrayBuffer }
  | { t: 'copyBuffer'; src: number; dst: number; bytes: number }
  /** A compute pipeline: `layout` has one letter per binding after the metadata: r (read) or w (read_write). */
  | { t: 'kernel'; kid: number; code: string; layout: string; label: string }
  | { t: 'run'; kid: number; ids: number[]; meta: ArrayBuffer; groups: [number, number, number] };

export type Request =
  | { r: 'read'; id: number; bytes: number; sab: SharedArrayBuffer | null }
  | { r: 'sync' }
  | { r: 'lose' }
  | { r: 'trim' }
  | { r: 'stats' };

/** Control block of the Node transport: Int32 words, then a UTF-8 message area. */
export const CTL_STATE = 0; // 0 waiting, 1 ok, 2 error
export const CTL_LEN = 1;   // bytes of message
export const CTL_HEADER_BYTES = 16;
export const CTL_MESSAGE_BYTES = 1 << 16;

export interface DeviceInfo {
  adapter: string;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupsPerDimension: number;
  minStorageBufferOffsetAlignment: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupStorageSize: number;
  /** The device was opened with 'shader-f16': float16 tensors are stored and computed natively. */
  f16: boolean;
  /** A software rasteriser (SwiftShader, lavapipe/llvmpipe): barriers are costly, kernels are chosen for it. */
  software: boolean;
}

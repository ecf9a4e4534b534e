/**
 * @module lavender/webgpu
 */
// `lavender/webgpu`: the webgpu backend's entry points. In a browser, `await initWebGpu()` before using
// device 'webgpu' (and read results with `backend.readAsync`: browser WebGPU has no synchronous readback).
export { initWebGpu, createWebGpuBackend, createWebGpuBackendAsync, sharedWebGpuBackend, WebGpuBackend } from './backends/webgpu/index.js';

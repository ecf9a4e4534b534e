/**
 * @module lavender/ops
 */
// The differentiable op set, re-exported in one place.
import './methods.js';
export * from './creation.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './views.js';
export * from './movement.js';
export * from './matmul.js';
export * from './nn.js';
export * from './composite.js';
export { autocast, autocastDtype, type LowPrecision } from './autocast.js';

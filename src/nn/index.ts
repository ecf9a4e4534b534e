/**
 * @module lavender/nn
 */
export { Module, ModuleList, type LoadOptions } from './module.js';
export { Linear, Conv2d, LayerNorm, GroupNorm, Embedding, uniformInit, type InitOptions } from './layers.js';
export * from './blocks.js';
export { runPlan, type ForwardPlan, type PlanBlock, type Blockwise } from './plan.js';

/**
 * @module lavender/flow
 */
export * from './rectified-flow.js';

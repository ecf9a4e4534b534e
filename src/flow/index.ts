export * from './rectified-flow.js';

export { SGD, type SgdOptions } from './sgd.js';

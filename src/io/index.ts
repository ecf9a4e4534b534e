/**
 * @module lavender/io
 */
// `lavender/io`: reading and writing files — safetensors, PyTorch .pt (read as data only), PNG, GIF,
// line plots, and output-path checks.
export { loadSafetensors, saveSafetensors, parseSafetensors, serializeSafetensors, readSafetensorsMetadata, writeFileAtomic, type SafetensorsResult } from './safetensors.js';
export { loadTorchCheckpoint, parseTorchCheckpoint, type TorchLoadOptions } from './torch-pt.js';
export { encodePng, decodePng, imageGrid, toByte, crc32, type PngImage, type PngChannels, type EncodePngOptions } from './png.js';
export { encodeGif } from './gif.js';
export { plotPanels, type Panel, type Series } from './plot.js';
export { prepareOutputDir, prepareOutputFile } from './output-path.js';

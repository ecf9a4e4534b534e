/**
 * @module lavender/io
 */
// `lavender/io`: reading and writing files — safetensors and PyTorch .pt (read as data only, any size, tensor
// by tensor; written streamed), HF model folders, PNG, GIF,
// line plots, and output-path checks.
export { loadSafetensors, saveSafetensors, parseSafetensors, serializeSafetensors, readSafetensorsMetadata, inspectSafetensors, writeFileAtomic, type SafetensorsResult, type SafetensorsLoadOptions, type SafetensorsHeader } from './safetensors.js';
export { loadTorchCheckpoint, parseTorchCheckpoint, type TorchLoadOptions } from './torch-pt.js';
export { saveTorchCheckpoint, serializeTorchCheckpoint } from './torch-pt-write.js';
export { loadHfWeights, readHfConfig, type HfWeightsOptions } from './hf-folder.js';
export { encodePng, decodePng, imageGrid, toByte, crc32, type PngImage, type PngChannels, type EncodePngOptions } from './png.js';
export { encodeGif } from './gif.js';
export { plotPanels, type Panel, type Series } from './plot.js';
export { prepareOutputDir, prepareOutputFile } from './output-path.js';

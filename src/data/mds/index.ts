// MosaicML Streaming "MDS" datasets: read them (openMds), write them (MdsWriter), and feed them to training
// (MdsLoader: a Philox-seeded shuffle per epoch, partitioned across ranks, with an exact-resume state).
//
// Layout of a dataset directory (as written by MosaicML `streaming`'s MDSWriter):
//   index.json        {"version": 2, "shards": [{column_encodings, column_names, column_sizes, compression,
//                      format: "mds", hashes, raw_data: {basename, bytes, hashes}, samples, size_limit, version: 2,
//                      zip_data: null | {basename, bytes, hashes}}, ...]}
//   shard.00000.mds   uint32 LE num_samples; num_samples + 1 uint32 LE offsets (absolute byte offsets of each sample,
//                     the last one is the end of the file); MDSWriter then puts the shard's config as JSON (readers
//                     ignore it: they only follow the offsets); then the samples.
//   A sample          for each variable-size column (column_sizes[c] null), in column order, a uint32 LE byte
//                     length; then every column's payload, concatenated in column order.
//
// Encodings and what `get` returns for them:
//   bytes, jpeg, jpeg:<quality>, png   Uint8Array (images are not decoded)
//   str                                string (UTF-8, invalid UTF-8 is an error)
//   int, int64, uint64                 number when within +-(2^53 - 1), else bigint (writers take either)
//   int8 int16 int32 uint8 uint16 uint32 float16 float32 float64   number
//   str_int                            number or bigint, as for int;  str_float: number
//   str_decimal                        string (the decimal text; JS has no Decimal)
//   json                               the parsed value (Python's bare NaN / Infinity / -Infinity are accepted)
//   pil                                {width, height, mode, data: Uint8Array}  ([w, h, len(mode)] uint32, mode, raw)
//   ndarray[:<dtype>[:<d0,d1,...>]]    {dtype, shape, data: typed array}, MosaicML's header format (see ndarray
//                                      below); float16 data is a Uint16Array of half-precision bits
//   pkl                                refused: lavender never unpickles; the error names the column (getRaw gives
//                                      the bytes, and get(i, columns) reads the other columns)
//   np16 (LavenderFlow)                variable-size Uint16Array of float16 bits; float16BitsToFloat32 decodes it
//   <scalar> with column_sizes null    (LavenderFlow) a variable-size typed array of that dtype, e.g. `uint8` raw
//                                      bytes as a Uint8Array. With column_sizes = itemsize it is the MosaicML scalar.
// Compression: null; gz and br (zlib) are read and written; zstd, bz2 and snappy are not available in Node, so a
// shard that only exists compressed that way is an error naming it (a decompressed shard.NNNNN.mds next to it,
// as streaming leaves in its local cache, is used instead).
//
// Files: format.ts (dtypes, Python-compatible text), codecs.ts (encodings), reader.ts (openMds, MdsDataset),
// writer.ts (MdsWriter), loader.ts (MdsLoader).
export { f64ToF16, float16BitsToFloat32, float32ToFloat16Bits, pyFloatRepr, type MdsDtype, type MdsTypedArray } from './format.js';
export { MDS_ENCODINGS, mdsDecode, mdsEncode, type MdsNdArray, type MdsPilImage } from './codecs.js';
export { MdsDataset, openMds, type MdsOpenOptions } from './reader.js';
export { MdsWriter, type MdsColumnSpec, type MdsWriterOptions } from './writer.js';
export { MdsLoader, type MdsLoaderOptions, type MdsLoaderState, type MdsSampleSource } from './loader.js';

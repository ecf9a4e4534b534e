// N-API glue for the cuda backend: argument decoding and conversion between JavaScript values and the
// host runtime / kernel launchers in kernels/cuda/. Nothing here computes. Every entry point catches
// C++ exceptions and rethrows them as JavaScript errors prefixed "cuda: " (the process never aborts).
//
// Strided operands arrive packed in one Float64Array (see src/backends/cuda/index.ts, `Pack`):
//   shape = [ndim, d0 .. d{ndim-1}]      arg = [ptr, dtype, offset, s0 .. s{ndim-1}]
// elementwise descriptors start with the path plan.ts chose: [path, shape, arg...].
// Device pointers travel as doubles; they are checked to be exact (< 2^53) when handed out.
#include <napi.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../kernels/cuda/host/runtime.h"
#include "../kernels/cuda/lav.h"

using lav::Runtime;

namespace {

struct Reader {
  const double* d;
  size_t n, i = 0;
  double next() {
    if (i >= n) throw lav::Error("descriptor too short (addon and TypeScript out of step?)");
    return d[i++];
  }
  int64_t int64() { return (int64_t)next(); }
  LavShape shape() {
    LavShape s{};
    s.ndim = (int32_t)int64();
    if (s.ndim < 0 || s.ndim > LAV_MAX_DIMS) throw lav::Error("shape has " + std::to_string(s.ndim) + " dims (at most 8 after coalescing)");
    s.n = 1;
    for (int k = 0; k < s.ndim; k++) s.n *= (s.dims[k] = int64());
    return s;
  }
  LavArg arg(int ndim) {
    LavArg a{};
    a.ptr = (void*)(uintptr_t)next();
    a.dtype = (int32_t)int64();
    a.offset = int64();
    for (int k = 0; k < ndim; k++) a.strides[k] = int64();
    return a;
  }
};

Reader reader(const Napi::Value& v) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw lav::Error("expected a Float64Array descriptor");
  auto a = v.As<Napi::Float64Array>();
  return Reader{a.Data(), a.ElementLength()};
}

double num(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw lav::Error("argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

void* ptrArg(const Napi::CallbackInfo& info, size_t i) { return (void*)(uintptr_t)num(info, i); }

std::vector<std::string> strings(const Napi::Value& v) {
  std::vector<std::string> out;
  if (!v.IsArray()) return out;
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    if (e.IsString()) out.push_back(e.As<Napi::String>().Utf8Value());
  }
  return out;
}

double exactPtr(void* p) {
  uintptr_t u = (uintptr_t)p;
  if (u >= (uintptr_t(1) << 53)) throw lav::Error("device pointer above 2^53 cannot be represented");
  return (double)u;
}

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);

template <Fn F>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("cuda: ") + e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), "cuda: unknown C++ exception in the addon");
  }
}

// ---- device ------------------------------------------------------------------------------------------

Napi::Value Probe(const Napi::CallbackInfo& info) {
  lav::ProbeResult p = lav::probe();
  auto o = Napi::Object::New(info.Env());
  o.Set("code", p.code);
  o.Set("name", p.name);
  o.Set("message", p.message);
  o.Set("count", p.count);
  o.Set("driverVersion", p.driverVersion);
  o.Set("runtimeVersion", p.runtimeVersion);
  return o;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  lav::DeviceInfo d = Runtime::get().init((int)num(info, 0), strings(info[1]));
  auto o = Napi::Object::New(info.Env());
  o.Set("index", d.index);
  o.Set("name", d.name);
  o.Set("major", d.major);
  o.Set("minor", d.minor);
  o.Set("sms", d.sms);
  o.Set("totalMem", (double)d.totalMem);
  o.Set("cublasPath", d.cublasPath);
  o.Set("cublasVersion", d.cublasVersion);
  return o;
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), exactPtr(Runtime::get().alloc((size_t)num(info, 0))));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Runtime::get().free(ptrArg(info, 0));
  return info.Env().Undefined();
}

Napi::Value MemStats(const Napi::CallbackInfo& info) {
  auto& a = Runtime::get().allocator();
  auto o = Napi::Object::New(info.Env());
  o.Set("inUse", (double)a.inUse());
  o.Set("cached", (double)a.cached());
  o.Set("reserved", (double)a.reserved());
  o.Set("peak", (double)a.peak());
  o.Set("hits", (double)a.hits());
  o.Set("misses", (double)a.misses());
  o.Set("liveBlocks", (double)a.liveBlocks());
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  Runtime::get().synchronize("emptyCache");
  Runtime::get().allocator().emptyCache();
  return info.Env().Undefined();
}

// write(ptr, byteOffset, typedArray): host -> device, ordered on the stream (pageable source is staged
// before the call returns, so the JavaScript array may change afterwards)
Napi::Value Write(const Napi::CallbackInfo& info) {
  Runtime& r = Runtime::get();
  if (!info[2].IsTypedArray()) throw lav::Error("write: expected a typed array");
  auto t = info[2].As<Napi::TypedArray>();
  const uint8_t* src = static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  char* dst = static_cast<char*>(ptrArg(info, 0)) + (size_t)num(info, 1);
  if (t.ByteLength()) lav::check(cudaMemcpyAsync(dst, src, t.ByteLength(), cudaMemcpyHostToDevice, r.stream()), "cuda write (cudaMemcpyAsync)");
  return info.Env().Undefined();
}

// read(ptr, byteOffset, bytes) -> ArrayBuffer: waits for the stream
Napi::Value Read(const Napi::CallbackInfo& info) {
  Runtime& r = Runtime::get();
  size_t bytes = (size_t)num(info, 2);
  auto buf = Napi::ArrayBuffer::New(info.Env(), bytes);
  const char* src = static_cast<const char*>(ptrArg(info, 0)) + (size_t)num(info, 1);
  if (bytes) lav::check(cudaMemcpyAsync(buf.Data(), src, bytes, cudaMemcpyDeviceToHost, r.stream()), "cuda read (cudaMemcpyAsync)");
  r.synchronize("cuda read");
  return buf;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Runtime::get().synchronize("synchronize");
  return info.Env().Undefined();
}

// ---- kernels -----------------------------------------------------------------------------------------

cudaStream_t ready(const char* what) {
  Runtime& r = Runtime::get();
  if (!r.ready()) throw lav::Error(std::string(what) + ": the cuda device is not initialised");
  return r.stream();
}

// elementwise descriptors: [path, ndim, dims..., arg, arg, ...] (path: a LavPath from plan.ts)
struct Elementwise {
  int path;
  LavShape sh;
  std::vector<LavArg> args;
};
Elementwise elementwise(const Napi::Value& v, int nargs) {
  Reader rd = reader(v);
  Elementwise e;
  e.path = (int)rd.int64();
  if (e.path < LAV_PATH_VEC || e.path > LAV_PATH_GENERIC) throw lav::Error("unknown elementwise path " + std::to_string(e.path));
  e.sh = rd.shape();
  for (int k = 0; k < nargs; k++) e.args.push_back(rd.arg(e.sh.ndim));
  return e;
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  auto s = ready("fill");
  auto e = elementwise(info[0], 1);
  Runtime::get().launched(lav_fill(e.path, e.sh, e.args[0], num(info, 1), s), "fill");
  return info.Env().Undefined();
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  auto s = ready("copy");
  auto e = elementwise(info[0], 2);
  Runtime::get().launched(lav_copy(e.path, e.sh, e.args[0], e.args[1], (int)num(info, 1), s), "copy");
  return info.Env().Undefined();
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  auto s = ready("unary");
  int op = (int)num(info, 0);
  if (op < 0 || op >= LAV_UNARY_COUNT) throw lav::Error("unary: unknown op code " + std::to_string(op));
  auto e = elementwise(info[1], 2);
  Runtime::get().launched(lav_unary(e.path, op, e.sh, e.args[0], e.args[1], s), "unary");
  return info.Env().Undefined();
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  auto s = ready("binary");
  int op = (int)num(info, 0);
  if (op < 0 || op >= LAV_BINARY_COUNT) throw lav::Error("binary: unknown op code " + std::to_string(op));
  auto e = elementwise(info[1], 3);
  Runtime::get().launched(lav_binary(e.path, op, e.sh, e.args[0], e.args[1], e.args[2], s), "binary");
  return info.Env().Undefined();
}

// binaryScalar(op, [path, shape, x, out], scalar)
Napi::Value BinaryScalar(const Napi::CallbackInfo& info) {
  auto s = ready("binaryScalar");
  int op = (int)num(info, 0);
  if (op < 0 || op >= LAV_BINARY_COUNT) throw lav::Error("binaryScalar: unknown op code " + std::to_string(op));
  auto e = elementwise(info[1], 2);
  Runtime::get().launched(lav_binary_scalar(e.path, op, e.sh, e.args[0], num(info, 2), e.args[1], s), "binaryScalar");
  return info.Env().Undefined();
}

Napi::Value Where(const Napi::CallbackInfo& info) {
  auto s = ready("where");
  auto e = elementwise(info[0], 4);
  Runtime::get().launched(lav_where(e.path, e.sh, e.args[0], e.args[1], e.args[2], e.args[3], s), "where");
  return info.Env().Undefined();
}

// [path, shape, x, g, out]
Napi::Value SiluBackward(const Napi::CallbackInfo& info) {
  auto s = ready("siluBackward");
  auto e = elementwise(info[0], 3);
  Runtime::get().launched(lav_silu_backward(e.path, e.sh, e.args[0], e.args[1], e.args[2], s), "siluBackward");
  return info.Env().Undefined();
}

// [path, shape, a, b, out]
Napi::Value Swiglu(const Napi::CallbackInfo& info) {
  auto s = ready("swiglu");
  auto e = elementwise(info[0], 3);
  Runtime::get().launched(lav_swiglu(e.path, e.sh, e.args[0], e.args[1], e.args[2], s), "swiglu");
  return info.Env().Undefined();
}

// [path, shape, x, scale, shift, out]
Napi::Value Modulate(const Napi::CallbackInfo& info) {
  auto s = ready("modulate");
  auto e = elementwise(info[0], 4);
  Runtime::get().launched(lav_modulate(e.path, e.sh, e.args[0], e.args[1], e.args[2], e.args[3], s), "modulate");
  return info.Env().Undefined();
}

// [path, shape, x, gate, y, out]
Napi::Value GatedAdd(const Napi::CallbackInfo& info) {
  auto s = ready("gatedAdd");
  auto e = elementwise(info[0], 4);
  Runtime::get().launched(lav_gated_add(e.path, e.sh, e.args[0], e.args[1], e.args[2], e.args[3], s), "gatedAdd");
  return info.Env().Undefined();
}

// ([path, shape, a, b, g, da, db], hasDa, hasDb) (da/db args present but ignored when absent)
Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  auto s = ready("swigluBackward");
  auto e = elementwise(info[0], 5);
  bool hasDa = num(info, 1) != 0, hasDb = num(info, 2) != 0;
  Runtime::get().launched(lav_swiglu_backward(e.path, e.sh, e.args[0], e.args[1], e.args[2], hasDa ? &e.args[3] : nullptr,
                                              hasDb ? &e.args[4] : nullptr, s), "swigluBackward");
  return info.Env().Undefined();
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  auto s = ready("reduce");
  int op = (int)num(info, 0);
  if (op < 0 || op >= LAV_REDUCE_COUNT) throw lav::Error("reduce: unknown op code " + std::to_string(op));
  Reader rd = reader(info[1]);
  LavShape outer = rd.shape(), inner = rd.shape();
  LavArg x = rd.arg(outer.ndim), xin = rd.arg(inner.ndim), o = rd.arg(outer.ndim);
  Runtime::get().launched(lav_reduce(op, outer, inner, x, xin, o, s), "reduce");
  return info.Env().Undefined();
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  auto s = ready("gather");
  Reader rd = reader(info[0]);
  LavShape sh = rd.shape();
  LavArg x = rd.arg(sh.ndim), idx = rd.arg(sh.ndim), o = rd.arg(sh.ndim);
  int64_t stride = (int64_t)num(info, 1), size = (int64_t)num(info, 2);
  Runtime& r = Runtime::get();
  r.launched(lav_gather(sh, x, stride, size, idx, o, r.indexFlag(), s), "gather");  // a bad index throws at the next sync
  return info.Env().Undefined();
}

Napi::Value ScatterAdd(const Napi::CallbackInfo& info) {
  auto s = ready("scatterAdd");
  Reader rd = reader(info[0]);
  LavShape sh = rd.shape();
  LavArg d = rd.arg(sh.ndim), idx = rd.arg(sh.ndim), src = rd.arg(sh.ndim);
  int64_t stride = (int64_t)num(info, 1), size = (int64_t)num(info, 2);
  Runtime& r = Runtime::get();
  r.launched(lav_scatter_add(sh, d, stride, size, idx, src, r.indexFlag(), s), "scatterAdd");
  return info.Env().Undefined();
}

Napi::Value Random(const Napi::CallbackInfo& info) {
  auto s = ready("random");
  Reader rd = reader(info[0]);
  LavShape sh = rd.shape();
  LavArg o = rd.arg(sh.ndim);
  Runtime::get().launched(lav_random(sh, o, (int)num(info, 1), (uint64_t)num(info, 2), (uint64_t)num(info, 3), s), "random");
  return info.Env().Undefined();
}

// gemm(Float64Array [transa, transb, m, n, k, A, lda, strideA, B, ldb, strideB, C, ldc, strideC, batch, dtype, tf32])
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  ready("matmul");
  Reader rd = reader(info[0]);
  lav::GemmArgs g{};
  g.transa = (int)rd.int64(); g.transb = (int)rd.int64();
  g.m = (int)rd.int64(); g.n = (int)rd.int64(); g.k = (int)rd.int64();
  g.A = (const void*)(uintptr_t)rd.next(); g.lda = (int)rd.int64(); g.strideA = rd.int64();
  g.B = (const void*)(uintptr_t)rd.next(); g.ldb = (int)rd.int64(); g.strideB = rd.int64();
  g.C = (void*)(uintptr_t)rd.next(); g.ldc = (int)rd.int64(); g.strideC = rd.int64();
  g.batch = (int)rd.int64(); g.dtype = (int)rd.int64(); g.tf32 = (int)rd.int64();
  Runtime::get().gemm(g);
  return info.Env().Undefined();
}

// rows/cols kernels: descriptor [rows, cols, x arg(0 dims), out arg(0 dims) ...]
Napi::Value Softmax(const Napi::CallbackInfo& info) {
  auto s = ready("softmax");
  Reader rd = reader(info[0]);
  int64_t rows = rd.int64(), cols = rd.int64();
  LavArg x = rd.arg(0), o = rd.arg(0);
  Runtime::get().launched(lav_softmax(rows, cols, x, o, (int)num(info, 1), num(info, 2), s), "softmax");
  return info.Env().Undefined();
}

Napi::Value SoftmaxBackward(const Napi::CallbackInfo& info) {
  auto s = ready("softmaxBackward");
  Reader rd = reader(info[0]);
  int64_t rows = rd.int64(), cols = rd.int64();
  LavArg y = rd.arg(0), g = rd.arg(0), o = rd.arg(0);
  Runtime::get().launched(lav_softmax_backward(rows, cols, y, g, o, num(info, 1), s), "softmaxBackward");
  return info.Env().Undefined();
}


// ([rows, H, T, hd, x, cos, sin, out], inverse)
Napi::Value Rotary(const Napi::CallbackInfo& info) {
  auto s = ready("rotary");
  Reader rd = reader(info[0]);
  int64_t rows = rd.int64(), H = rd.int64(), T = rd.int64(), hd = rd.int64();
  LavArg x = rd.arg(0), c = rd.arg(0), sn = rd.arg(0), o = rd.arg(0);
  Runtime::get().launched(lav_rotary(rows, (int32_t)H, (int32_t)T, (int32_t)hd, x, c, sn, o, (int)num(info, 1), s), "rotary");
  return info.Env().Undefined();
}

// [rows, cols, hasW, hasB, x, w, b, out, mean, rstd] (w/b args present but ignored when absent)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  auto s = ready("layerNorm");
  Reader rd = reader(info[0]);
  int64_t rows = rd.int64(), cols = rd.int64();
  bool hasW = rd.int64() != 0, hasB = rd.int64() != 0;
  LavArg x = rd.arg(0), w = rd.arg(0), b = rd.arg(0), o = rd.arg(0), mean = rd.arg(0), rstd = rd.arg(0);
  Runtime::get().launched(lav_layer_norm(rows, cols, x, hasW ? &w : nullptr, hasB ? &b : nullptr, num(info, 1), o, mean, rstd, s), "layerNorm");
  return info.Env().Undefined();
}

// [B, H, Tq, Tk, D, hasLse, q(3 strides), k(3), v(3), out(3), lse(0)]
Napi::Value Attention(const Napi::CallbackInfo& info) {
  auto s = ready("attention");
  Reader rd = reader(info[0]);
  int64_t B = rd.int64(), H = rd.int64(), Tq = rd.int64(), Tk = rd.int64(), D = rd.int64();
  bool hasLse = rd.int64() != 0;
  LavArg q = rd.arg(3), k = rd.arg(3), v = rd.arg(3), o = rd.arg(3), lse = rd.arg(0);
  Runtime::get().launched(lav_attention(B, H, Tq, Tk, D, q, k, v, o, hasLse ? &lse : nullptr, num(info, 1), (int)num(info, 2), s), "attention");
  return info.Env().Undefined();
}

// [rows, cols, hasW, hasDw, hasDb, hasMean, x, mean, rstd, w, g, dx, dw, db] (absent args present but ignored;
// without a mean, x holds xhat)
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  auto s = ready("layerNormBackward");
  Reader rd = reader(info[0]);
  int64_t rows = rd.int64(), cols = rd.int64();
  bool hasW = rd.int64() != 0, hasDw = rd.int64() != 0, hasDb = rd.int64() != 0, hasMean = rd.int64() != 0;
  LavArg x = rd.arg(0), mean = rd.arg(0), rstd = rd.arg(0), w = rd.arg(0), g = rd.arg(0), dx = rd.arg(0), dw = rd.arg(0), db = rd.arg(0);
  Runtime::get().launched(lav_layer_norm_backward(rows, cols, x, hasMean ? &mean : nullptr, rstd, hasW ? &w : nullptr, g, dx, hasDw ? &dw : nullptr,
                                                  hasDb ? &db : nullptr, s),
                          "layerNormBackward");
  return info.Env().Undefined();
}

// [B, H, Tq, Tk, D, q, k, v, out, lse, dout, dq, dk, dv (3 strides each; lse 0), delta (arg, 0 strides)] + (scale, causal)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  auto s = ready("attentionBackward");
  Reader rd = reader(info[0]);
  int64_t B = rd.int64(), H = rd.int64(), Tq = rd.int64(), Tk = rd.int64(), D = rd.int64();
  LavArg q = rd.arg(3), k = rd.arg(3), v = rd.arg(3), o = rd.arg(3), lse = rd.arg(0), g = rd.arg(3), dq = rd.arg(3), dk = rd.arg(3),
         dv = rd.arg(3), delta = rd.arg(0);
  if (delta.dtype != LAV_F32) throw lav::Error("attentionBackward: the delta scratch must be float32");
  Runtime::get().launched(lav_attention_backward(B, H, Tq, Tk, D, q, k, v, o, lse, g, dq, dk, dv, (float*)delta.ptr + delta.offset,
                                                 num(info, 1), (int)num(info, 2), s),
                          "attentionBackward");
  return info.Env().Undefined();
}

// [count, hasLow, (p, g, m, v, low: byte addresses; n, bc1, bc2sqrt) x count] + (lr, beta1, beta2, eps, weightDecay, gradScale)
Napi::Value AdamWMulti(const Napi::CallbackInfo& info) {
  auto s = ready("adamwMulti");
  Reader rd = reader(info[0]);
  LavAdamWTable t{};
  t.count = (int32_t)rd.int64();
  if (t.count < 0 || t.count > LAV_ADAMW_MULTI) throw lav::Error("adamwMulti: " + std::to_string(t.count) + " tensors (at most " + std::to_string(LAV_ADAMW_MULTI) + ")");
  const int hasLow = (int)rd.int64();
  for (int k = 0; k < t.count; k++) {
    LavAdamWEntry& e = t.e[k];
    e.p = (float*)(uintptr_t)rd.next();
    e.g = (const float*)(uintptr_t)rd.next();
    e.m = (float*)(uintptr_t)rd.next();
    e.v = (float*)(uintptr_t)rd.next();
    e.low = (void*)(uintptr_t)rd.next();
    e.n = rd.int64();
    e.bc1 = (float)rd.next();
    e.bc2sqrt = (float)rd.next();
  }
  Runtime::get().launched(lav_adamw_multi(&t, hasLow, num(info, 1), num(info, 2), num(info, 3), num(info, 4), num(info, 5), num(info, 6), s), "adamwMulti");
  return info.Env().Undefined();
}

// [n, hasLow, p, g, m, v, pLow] + (lr, beta1, beta2, eps, weightDecay, bc1, bc2sqrt, gradScale)
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  auto s = ready("adamw");
  Reader rd = reader(info[0]);
  int64_t n = rd.int64();
  bool hasLow = rd.int64() != 0;
  LavArg p = rd.arg(0), g = rd.arg(0), m = rd.arg(0), v = rd.arg(0), low = rd.arg(0);
  Runtime::get().launched(lav_adamw(n, p, g, m, v, hasLow ? &low : nullptr, num(info, 1), num(info, 2), num(info, 3), num(info, 4),
                                    num(info, 5), num(info, 6), num(info, 7), num(info, 8), s),
                          "adamw");
  return info.Env().Undefined();
}

// ---- build facts ---------------------------------------------------------------------------------------

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("kernels", lav_kernels_build_info());
  o.Set("cudartVersion", CUDART_VERSION);
#ifdef LAV_CUDA_ARCHS
  o.Set("archs", LAV_CUDA_ARCHS);
#endif
  auto pc = Napi::Object::New(info.Env());
  pc.Set("cublas", lav_proto_check_cublas());
  pc.Set("nccl", lav_proto_check_nccl());
  o.Set("protoCheck", pc);
  return o;
}

Napi::Value SelfTest(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), lav::allocatorSelfTest()); }

// ---- NCCL ----------------------------------------------------------------------------------------------

Napi::Value NcclLoad(const Napi::CallbackInfo& info) {
  std::string path;
  int v = Runtime::get().ncclLoad(strings(info[0]), &path);
  auto o = Napi::Object::New(info.Env());
  o.Set("version", v);
  o.Set("path", path);
  return o;
}

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  auto id = Runtime::get().ncclUniqueId();
  return Napi::Buffer<char>::Copy(info.Env(), id.data(), id.size());
}

Napi::Value NcclCommInitRank(const Napi::CallbackInfo& info) {
  if (!info[1].IsBuffer()) throw lav::Error("ncclCommInitRank: the unique id must be a Buffer");
  auto b = info[1].As<Napi::Buffer<char>>();
  std::vector<char> id(b.Data(), b.Data() + b.Length());
  return Napi::Number::New(info.Env(), Runtime::get().ncclInitRank((int)num(info, 0), id, (int)num(info, 2)));
}

Napi::Value NcclCommDestroy(const Napi::CallbackInfo& info) {
  Runtime::get().ncclDestroy((int)num(info, 0));
  return info.Env().Undefined();
}

// (send, recv, count, dtype, op, comm)
Napi::Value NcclAllReduce(const Napi::CallbackInfo& info) {
  Runtime::get().ncclAllReduce(ptrArg(info, 0), ptrArg(info, 1), (size_t)num(info, 2), (int)num(info, 3), (int)num(info, 4), (int)num(info, 5));
  return info.Env().Undefined();
}
Napi::Value NcclReduceScatter(const Napi::CallbackInfo& info) {
  Runtime::get().ncclReduceScatter(ptrArg(info, 0), ptrArg(info, 1), (size_t)num(info, 2), (int)num(info, 3), (int)num(info, 4), (int)num(info, 5));
  return info.Env().Undefined();
}
// (send, recv, sendcount, dtype, comm)
Napi::Value NcclAllGather(const Napi::CallbackInfo& info) {
  Runtime::get().ncclAllGather(ptrArg(info, 0), ptrArg(info, 1), (size_t)num(info, 2), (int)num(info, 3), (int)num(info, 4));
  return info.Env().Undefined();
}
// (send, recv, count, dtype, root, comm)
Napi::Value NcclBroadcast(const Napi::CallbackInfo& info) {
  Runtime::get().ncclBroadcast(ptrArg(info, 0), ptrArg(info, 1), (size_t)num(info, 2), (int)num(info, 3), (int)num(info, 4), (int)num(info, 5));
  return info.Env().Undefined();
}
Napi::Value NcclGroupStart(const Napi::CallbackInfo& info) {
  Runtime::get().ncclGroupStart();
  return info.Env().Undefined();
}
Napi::Value NcclGroupEnd(const Napi::CallbackInfo& info) {
  Runtime::get().ncclGroupEnd();
  return info.Env().Undefined();
}
// (comm): abort a communicator (its handle is gone afterwards)
Napi::Value NcclCommAbort(const Napi::CallbackInfo& info) {
  Runtime::get().ncclAbort((int)num(info, 0));
  return info.Env().Undefined();
}
// (comm) -> null, or {code, message} for an asynchronous NCCL error
Napi::Value NcclCommGetAsyncError(const Napi::CallbackInfo& info) {
  std::string what;
  int code = Runtime::get().ncclAsyncError((int)num(info, 0), &what);
  if (code == 0) return info.Env().Null();
  auto o = Napi::Object::New(info.Env());
  o.Set("code", code);
  o.Set("message", what);
  return o;
}
// () -> id of an event recorded after the work enqueued so far
Napi::Value MarkerRecord(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), Runtime::get().markerRecord()); }
// (id) -> whether the work before it has finished (never blocks)
Napi::Value MarkerDone(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Runtime::get().markerDone((int)num(info, 0))); }
Napi::Value MarkerDestroy(const Napi::CallbackInfo& info) {
  Runtime::get().markerDestroy((int)num(info, 0));
  return info.Env().Undefined();
}

}  // namespace

Napi::Object Init_(Napi::Env env, Napi::Object exports) {
#define LAV_EXPORT(name, fn) exports.Set(name, Napi::Function::New<guarded<fn>>(env, name))
  LAV_EXPORT("probe", Probe);
  LAV_EXPORT("init", Init);
  LAV_EXPORT("alloc", Alloc);
  LAV_EXPORT("free", Free);
  LAV_EXPORT("memStats", MemStats);
  LAV_EXPORT("emptyCache", EmptyCache);
  LAV_EXPORT("write", Write);
  LAV_EXPORT("read", Read);
  LAV_EXPORT("synchronize", Synchronize);
  LAV_EXPORT("fill", Fill);
  LAV_EXPORT("copy", Copy);
  LAV_EXPORT("unary", Unary);
  LAV_EXPORT("binary", Binary);
  LAV_EXPORT("binaryScalar", BinaryScalar);
  LAV_EXPORT("swiglu", Swiglu);
  LAV_EXPORT("modulate", Modulate);
  LAV_EXPORT("gatedAdd", GatedAdd);
  LAV_EXPORT("swigluBackward", SwigluBackward);
  LAV_EXPORT("where", Where);
  LAV_EXPORT("reduce", Reduce);
  LAV_EXPORT("gather", Gather);
  LAV_EXPORT("scatterAdd", ScatterAdd);
  LAV_EXPORT("random", Random);
  LAV_EXPORT("gemm", Gemm);
  LAV_EXPORT("rotary", Rotary);
  LAV_EXPORT("softmax", Softmax);
  LAV_EXPORT("softmaxBackward", SoftmaxBackward);
  LAV_EXPORT("siluBackward", SiluBackward);
  LAV_EXPORT("layerNorm", LayerNorm);
  LAV_EXPORT("layerNormBackward", LayerNormBackward);
  LAV_EXPORT("attention", Attention);
  LAV_EXPORT("attentionBackward", AttentionBackward);
  LAV_EXPORT("adamw", AdamW);
  LAV_EXPORT("adamwMulti", AdamWMulti);
  LAV_EXPORT("buildInfo", BuildInfo);
  LAV_EXPORT("selfTest", SelfTest);
  LAV_EXPORT("ncclLoad", NcclLoad);
  LAV_EXPORT("ncclGetUniqueId", NcclUniqueId);
  LAV_EXPORT("ncclCommInitRank", NcclCommInitRank);
  LAV_EXPORT("ncclCommDestroy", NcclCommDestroy);
  LAV_EXPORT("ncclAllReduce", NcclAllReduce);
  LAV_EXPORT("ncclReduceScatter", NcclReduceScatter);
  LAV_EXPORT("ncclAllGather", NcclAllGather);
  LAV_EXPORT("ncclBroadcast", NcclBroadcast);
  LAV_EXPORT("ncclGroupStart", NcclGroupStart);
  LAV_EXPORT("ncclGroupEnd", NcclGroupEnd);
  LAV_EXPORT("ncclCommAbort", NcclCommAbort);
  LAV_EXPORT("ncclCommGetAsyncError", NcclCommGetAsyncError);
  LAV_EXPORT("markerRecord", MarkerRecord);
  LAV_EXPORT("markerDone", MarkerDone);
  LAV_EXPORT("markerDestroy", MarkerDestroy);
#undef LAV_EXPORT
  return exports;
}

NODE_API_MODULE(lavender_cuda, Init_)

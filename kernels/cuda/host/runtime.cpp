#include "runtime.h"

#include <dlfcn.h>
#include <unistd.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <unordered_map>

#include "cublas_proto.h"
#include "nccl_proto.h"

namespace lav {

void check(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return;
  throw Error(what + ": " + cudaGetErrorName(e) + " (" + std::to_string((int)e) + "): " + cudaGetErrorString(e));
}

ProbeResult probe() {
  ProbeResult r;
  r.runtimeVersion = CUDART_VERSION;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  r.code = (int)e;
  r.name = cudaGetErrorName(e);
  r.message = cudaGetErrorString(e);
  r.count = e == cudaSuccess ? count : 0;
  int dv = 0;
  if (cudaDriverGetVersion(&dv) == cudaSuccess) r.driverVersion = dv;
  cudaGetLastError();  // probing must not leave a sticky error behind
  return r;
}

void* openLibrary(const std::vector<std::string>& dirs, const std::vector<std::string>& names,
                  const std::vector<std::string>& preloads, std::string* found, std::string* tried) {
  auto attempt = [&](const std::string& path) -> void* {
    dlerror();
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) {
      *found = path;
      return h;
    }
    const char* err = dlerror();
    if (!tried->empty()) *tried += "; ";
    *tried += err ? err : (path + ": not loadable");
    return nullptr;
  };
  for (const auto& d : dirs) {
    if (d.empty()) continue;
    for (const auto& n : names) {
      std::string path = d + "/" + n;
      if (access(path.c_str(), F_OK) != 0) continue;
      // a library next to its dependencies (cuBLAS next to cuBLASLt): load those first, globally
      for (const auto& pre : preloads) {
        std::string pp = d + "/" + pre;
        if (access(pp.c_str(), F_OK) == 0) dlopen(pp.c_str(), RTLD_NOW | RTLD_GLOBAL);
      }
      if (void* h = attempt(path)) return h;
    }
  }
  for (const auto& n : names)  // the system search: LD_LIBRARY_PATH, rpath, ld.so.cache
    if (void* h = attempt(n)) return h;
  return nullptr;
}

template <class F>
static F symbol(void* lib, const char* name, const char* libName) {
  dlerror();
  void* s = dlsym(lib, name);
  if (!s) {
    const char* err = dlerror();
    throw Error(std::string(libName) + " has no symbol " + name + (err ? std::string(" (") + err + ")" : ""));
  }
  return reinterpret_cast<F>(s);
}

namespace {

struct Cublas {
  void* lib = nullptr;
  std::string path;
  cublas::Handle handle = nullptr;
  cublas::pfn_cublasCreate_v2 create = nullptr;
  cublas::pfn_cublasDestroy_v2 destroy = nullptr;
  cublas::pfn_cublasSetStream_v2 setStream = nullptr;
  cublas::pfn_cublasSetMathMode setMathMode = nullptr;
  cublas::pfn_cublasSetWorkspace_v2 setWorkspace = nullptr;
  cublas::pfn_cublasGetVersion_v2 getVersion = nullptr;
  cublas::pfn_cublasGetStatusString statusString = nullptr;
  cublas::pfn_cublasGemmStridedBatchedEx gemm = nullptr;
};
Cublas cb;

struct Nccl {
  void* lib = nullptr;
  std::string path;
  nccl::pfn_ncclGetVersion getVersion = nullptr;
  nccl::pfn_ncclGetUniqueId getUniqueId = nullptr;
  nccl::pfn_ncclCommInitRank commInitRank = nullptr;
  nccl::pfn_ncclCommDestroy commDestroy = nullptr;
  nccl::pfn_ncclCommAbort commAbort = nullptr;
  nccl::pfn_ncclCommGetAsyncError commGetAsyncError = nullptr;
  nccl::pfn_ncclGetErrorString errorString = nullptr;
  nccl::pfn_ncclAllReduce allReduce = nullptr;
  nccl::pfn_ncclReduceScatter reduceScatter = nullptr;
  nccl::pfn_ncclAllGather allGather = nullptr;
  nccl::pfn_ncclBroadcast broadcast = nullptr;
  nccl::pfn_ncclGroupStart groupStart = nullptr;
  nccl::pfn_ncclGroupEnd groupEnd = nullptr;
  std::unordered_map<int, nccl::Comm> comms;
  int next = 1;
};
Nccl nc;

std::string cublasStatus(cublas::Status s) {
  std::string name = cb.statusString ? cb.statusString(s) : "";
  return name + " (" + std::to_string((int)s) + ")";
}

void cublasCheck(cublas::Status s, const char* what) {
  if (s != cublas::STATUS_SUCCESS) throw Error(std::string("cuBLAS ") + what + " failed: " + cublasStatus(s));
}

void ncclCheck(nccl::Result r, const char* what) {
  if (r == nccl::Success) return;
  std::string msg = nc.errorString ? nc.errorString(r) : "";
  throw Error(std::string("NCCL ") + what + " failed: " + msg + " (" + std::to_string((int)r) + ")");
}

}  // namespace

Runtime& Runtime::get() {
  static Runtime* r = new Runtime();  // never destroyed: process exit must not race the driver's teardown
  return *r;
}

void Runtime::requireReady(const char* what) const {
  if (!ready_) throw Error(std::string(what) + ": the cuda device is not initialised (create the backend first)");
}

DeviceInfo Runtime::init(int device, const std::vector<std::string>& libDirs) {
  DeviceInfo info;
  if (ready_) {
    if (device != device_) throw Error("already initialised on device " + std::to_string(device_) + "; one device per process");
  } else {
    ProbeResult p = probe();
    if (p.code != 0) {
      std::string cause = p.code == cudaErrorInsufficientDriver ? "no CUDA driver" : p.code == cudaErrorNoDevice ? "no CUDA device" : "CUDA unavailable";
      throw Error(cause + " (cudaGetDeviceCount returned " + std::to_string(p.code) + ": " + p.message + ")");
    }
    if (p.count == 0) throw Error("no CUDA device (cudaGetDeviceCount found 0)");
    if (device < 0 || device >= p.count) throw Error("device " + std::to_string(device) + " does not exist (" + std::to_string(p.count) + " present)");
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    if (!cb.lib) {
      std::string tried;
      cb.lib = openLibrary(libDirs, {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}, {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}, &cb.path, &tried);
      if (!cb.lib)
        throw Error("cuBLAS not found (tried " + (tried.empty() ? std::string("nothing") : tried) +
                    "); install the nvidia-cublas wheel or the CUDA toolkit and set LAVENDER_CUDA_LIB_PATH to its lib directory");
      cb.create = symbol<cublas::pfn_cublasCreate_v2>(cb.lib, "cublasCreate_v2", "cuBLAS");
      cb.destroy = symbol<cublas::pfn_cublasDestroy_v2>(cb.lib, "cublasDestroy_v2", "cuBLAS");
      cb.setStream = symbol<cublas::pfn_cublasSetStream_v2>(cb.lib, "cublasSetStream_v2", "cuBLAS");
      cb.setMathMode = symbol<cublas::pfn_cublasSetMathMode>(cb.lib, "cublasSetMathMode", "cuBLAS");
      cb.setWorkspace = symbol<cublas::pfn_cublasSetWorkspace_v2>(cb.lib, "cublasSetWorkspace_v2", "cuBLAS");
      cb.getVersion = symbol<cublas::pfn_cublasGetVersion_v2>(cb.lib, "cublasGetVersion_v2", "cuBLAS");
      cb.statusString = symbol<cublas::pfn_cublasGetStatusString>(cb.lib, "cublasGetStatusString", "cuBLAS");
      cb.gemm = symbol<cublas::pfn_cublasGemmStridedBatchedEx>(cb.lib, "cublasGemmStridedBatchedEx", "cuBLAS");
    }
    alloc_ = new CachingAllocator(
        [](size_t n) -> void* {
          void* p = nullptr;
          cudaError_t e = cudaMalloc(&p, n);
          if (e == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            return nullptr;
          }
          check(e, "cudaMalloc");
          return p;
        },
        [](void* p) { cudaFree(p); });
    cublasCheck(cb.create(&cb.handle), "cublasCreate");
    cublasCheck(cb.setStream(cb.handle, stream_), "cublasSetStream");
    // 32 MiB of workspace, the size NVIDIA recommends for Hopper
    cublasCheck(cb.setWorkspace(cb.handle, alloc_->allocate(size_t(32) << 20), size_t(32) << 20), "cublasSetWorkspace");
    flag_ = static_cast<LavIndexError*>(alloc_->allocate(sizeof(LavIndexError)));
    check(cudaMallocHost(reinterpret_cast<void**>(&hostFlag_), sizeof(LavIndexError)), "cudaMallocHost");
    check(cudaMemsetAsync(flag_, 0, sizeof(LavIndexError), stream_), "cudaMemsetAsync");
    hostFlag_->flag = 0;
    device_ = device;
    ready_ = true;
  }
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device_), "cudaGetDeviceProperties");
  info.index = device_;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.sms = prop.multiProcessorCount;
  info.totalMem = prop.totalGlobalMem;
  info.cublasPath = cb.path;
  int v = 0;
  if (cb.getVersion && cb.getVersion(cb.handle, &v) == cublas::STATUS_SUCCESS) info.cublasVersion = v;
  return info;
}

CachingAllocator& Runtime::allocator() {
  requireReady("allocator");
  return *alloc_;
}

void* Runtime::alloc(size_t bytes) {
  requireReady("alloc");
  try {
    return alloc_->allocate(bytes);
  } catch (const OutOfMemory& e) {
    size_t freeB = 0, total = 0;
    cudaMemGetInfo(&freeB, &total);
    cudaGetLastError();
    throw Error(std::string(e.what()) + "; device has " + CachingAllocator::mib(freeB) + " free of " + CachingAllocator::mib(total));
  }
}

void Runtime::free(void* p) {
  requireReady("free");
  alloc_->deallocate(p);
}

void Runtime::synchronize(const std::string& what) {
  requireReady("synchronize");
  // the index-error record rides along with every synchronisation (gather/scatterAdd never sync)
  check(cudaMemcpyAsync(hostFlag_, flag_, sizeof(LavIndexError), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream_), what + " (an earlier kernel may have failed asynchronously)");
  if (hostFlag_->flag) {
    const LavIndexError e = *hostFlag_;
    hostFlag_->flag = 0;
    check(cudaMemsetAsync(flag_, 0, sizeof(LavIndexError), stream_), "cudaMemsetAsync");
    throw Error(std::string(e.op == 0 ? "gather" : "scatterAdd") + ": index " + std::to_string((long long)e.value) +
                " is out of range for an axis of size " + std::to_string((long long)e.axisSize) + " (found by a kernel queued before this " +
                what + ")");
  }
}

void Runtime::launched(cudaError_t e, const char* kernel) {
  if (e != cudaSuccess) check(e, std::string("kernel ") + kernel + " launch failed");
}

LavIndexError* Runtime::indexFlag() {
  requireReady("index");
  return flag_;
}

void Runtime::gemm(const GemmArgs& g) {
  requireReady("matmul");
  cudaDataType t;
  cublas::ComputeType ct;
  switch (g.dtype) {
    case LAV_F32: t = CUDA_R_32F; ct = g.tf32 ? cublas::COMPUTE_32F_FAST_TF32 : cublas::COMPUTE_32F; break;
    case LAV_F64: t = CUDA_R_64F; ct = cublas::COMPUTE_64F; break;
    case LAV_BF16: t = CUDA_R_16BF; ct = cublas::COMPUTE_32F; break;
    case LAV_F16: t = CUDA_R_16F; ct = cublas::COMPUTE_32F; break;
    default: throw Error("matmul: cuBLAS has no kernel for dtype code " + std::to_string(g.dtype));
  }
  const float one = 1.f, zero = 0.f;
  const double oned = 1.0, zerod = 0.0;
  const void* alpha = g.dtype == LAV_F64 ? (const void*)&oned : (const void*)&one;
  const void* beta = g.dtype == LAV_F64 ? (const void*)&zerod : (const void*)&zero;
  cublasCheck(cb.gemm(cb.handle, (cublas::Operation)g.transa, (cublas::Operation)g.transb, g.m, g.n, g.k, alpha, g.A, t, g.lda,
                      g.strideA, g.B, t, g.ldb, g.strideB, beta, g.C, t, g.ldc, g.strideC, g.batch, ct, cublas::GEMM_DEFAULT),
              "cublasGemmStridedBatchedEx");
}

// ---- NCCL -------------------------------------------------------------------------------------------

int Runtime::ncclLoad(const std::vector<std::string>& libDirs, std::string* path) {
  if (!nc.lib) {
    std::string tried;
    void* lib = openLibrary(libDirs, {"libnccl.so.2", "libnccl.so"}, {}, &nc.path, &tried);
    if (!lib)
      throw Error("NCCL not found (tried " + (tried.empty() ? std::string("nothing") : tried) +
                  "); install the nvidia-nccl wheel and set LAVENDER_CUDA_LIB_PATH to its lib directory");
    nc.getVersion = symbol<nccl::pfn_ncclGetVersion>(lib, "ncclGetVersion", "NCCL");
    nc.getUniqueId = symbol<nccl::pfn_ncclGetUniqueId>(lib, "ncclGetUniqueId", "NCCL");
    nc.commInitRank = symbol<nccl::pfn_ncclCommInitRank>(lib, "ncclCommInitRank", "NCCL");
    nc.commDestroy = symbol<nccl::pfn_ncclCommDestroy>(lib, "ncclCommDestroy", "NCCL");
    nc.commAbort = symbol<nccl::pfn_ncclCommAbort>(lib, "ncclCommAbort", "NCCL");
    nc.commGetAsyncError = symbol<nccl::pfn_ncclCommGetAsyncError>(lib, "ncclCommGetAsyncError", "NCCL");
    nc.errorString = symbol<nccl::pfn_ncclGetErrorString>(lib, "ncclGetErrorString", "NCCL");
    nc.allReduce = symbol<nccl::pfn_ncclAllReduce>(lib, "ncclAllReduce", "NCCL");
    nc.reduceScatter = symbol<nccl::pfn_ncclReduceScatter>(lib, "ncclReduceScatter", "NCCL");
    nc.allGather = symbol<nccl::pfn_ncclAllGather>(lib, "ncclAllGather", "NCCL");
    nc.broadcast = symbol<nccl::pfn_ncclBroadcast>(lib, "ncclBroadcast", "NCCL");
    nc.groupStart = symbol<nccl::pfn_ncclGroupStart>(lib, "ncclGroupStart", "NCCL");
    nc.groupEnd = symbol<nccl::pfn_ncclGroupEnd>(lib, "ncclGroupEnd", "NCCL");
    nc.lib = lib;
  }
  *path = nc.path;
  int v = 0;
  ncclCheck(nc.getVersion(&v), "ncclGetVersion");
  return v;
}

static void ncclRequire(const char* what) {
  if (!nc.lib) throw Error(std::string(what) + ": NCCL is not loaded (call loadNccl first)");
}

static nccl::Comm commOf(int id, const char* what) {
  auto it = nc.comms.find(id);
  if (it == nc.comms.end()) throw Error(std::string(what) + ": communicator " + std::to_string(id) + " does not exist (destroyed?)");
  return it->second;
}

std::vector<char> Runtime::ncclUniqueId() {
  ncclRequire("ncclGetUniqueId");
  nccl::UniqueId id;
  ncclCheck(nc.getUniqueId(&id), "ncclGetUniqueId");
  return std::vector<char>(id.internal, id.internal + nccl::UNIQUE_ID_BYTES);
}

int Runtime::ncclInitRank(int nranks, const std::vector<char>& idBytes, int rank) {
  ncclRequire("ncclCommInitRank");
  requireReady("ncclCommInitRank");
  if (idBytes.size() != (size_t)nccl::UNIQUE_ID_BYTES) throw Error("ncclCommInitRank: the unique id must be 128 bytes");
  nccl::UniqueId id;
  std::memcpy(id.internal, idBytes.data(), nccl::UNIQUE_ID_BYTES);
  nccl::Comm c = nullptr;
  ncclCheck(nc.commInitRank(&c, nranks, id, rank), "ncclCommInitRank");
  int h = nc.next++;
  nc.comms[h] = c;
  return h;
}

void Runtime::ncclDestroy(int comm) {
  ncclRequire("ncclCommDestroy");
  nccl::Comm c = commOf(comm, "ncclCommDestroy");
  nc.comms.erase(comm);
  ncclCheck(nc.commDestroy(c), "ncclCommDestroy");
}

void Runtime::ncclAllReduce(const void* s, void* r, size_t count, int dtype, int op, int comm) {
  ncclRequire("ncclAllReduce");
  ncclCheck(nc.allReduce(s, r, count, (nccl::DataType)dtype, (nccl::RedOp)op, commOf(comm, "ncclAllReduce"), stream_), "ncclAllReduce");
}
void Runtime::ncclReduceScatter(const void* s, void* r, size_t recvcount, int dtype, int op, int comm) {
  ncclRequire("ncclReduceScatter");
  ncclCheck(nc.reduceScatter(s, r, recvcount, (nccl::DataType)dtype, (nccl::RedOp)op, commOf(comm, "ncclReduceScatter"), stream_), "ncclReduceScatter");
}
void Runtime::ncclAllGather(const void* s, void* r, size_t sendcount, int dtype, int comm) {
  ncclRequire("ncclAllGather");
  ncclCheck(nc.allGather(s, r, sendcount, (nccl::DataType)dtype, commOf(comm, "ncclAllGather"), stream_), "ncclAllGather");
}
void Runtime::ncclBroadcast(const void* s, void* r, size_t count, int dtype, int root, int comm) {
  ncclRequire("ncclBroadcast");
  ncclCheck(nc.broadcast(s, r, count, (nccl::DataType)dtype, root, commOf(comm, "ncclBroadcast"), stream_), "ncclBroadcast");
}
void Runtime::ncclGroupStart() {
  ncclRequire("ncclGroupStart");
  ncclCheck(nc.groupStart(), "ncclGroupStart");
}
void Runtime::ncclGroupEnd() {
  ncclRequire("ncclGroupEnd");
  ncclCheck(nc.groupEnd(), "ncclGroupEnd");
}

void Runtime::ncclAbort(int comm) {
  ncclRequire("ncclCommAbort");
  nccl::Comm c = commOf(comm, "ncclCommAbort");
  nc.comms.erase(comm);
  ncclCheck(nc.commAbort(c), "ncclCommAbort");
}

int Runtime::ncclAsyncError(int comm, std::string* what) {
  ncclRequire("ncclCommGetAsyncError");
  nccl::Result async = nccl::Success;
  ncclCheck(nc.commGetAsyncError(commOf(comm, "ncclCommGetAsyncError"), &async), "ncclCommGetAsyncError");
  if (async != nccl::Success && async != nccl::InProgress) *what = nc.errorString ? nc.errorString(async) : "";
  return async == nccl::InProgress ? 0 : (int)async;
}

namespace {
std::unordered_map<int, cudaEvent_t> markers;
int nextMarker = 1;
}  // namespace

int Runtime::markerRecord() {
  requireReady("markerRecord");
  cudaEvent_t e = nullptr;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
  cudaError_t r = cudaEventRecord(e, stream_);
  if (r != cudaSuccess) {
    cudaEventDestroy(e);
    check(r, "cudaEventRecord");
  }
  int id = nextMarker++;
  markers[id] = e;
  return id;
}

bool Runtime::markerDone(int id) {
  auto it = markers.find(id);
  if (it == markers.end()) throw Error("markerDone: marker " + std::to_string(id) + " does not exist");
  cudaError_t r = cudaEventQuery(it->second);
  if (r == cudaErrorNotReady) return false;
  check(r, "cudaEventQuery");
  return true;
}

void Runtime::markerDestroy(int id) {
  auto it = markers.find(id);
  if (it == markers.end()) return;
  cudaEventDestroy(it->second);
  markers.erase(it);
}

}  // namespace lav

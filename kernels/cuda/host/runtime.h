// The host side of the cuda backend: device selection, one stream, the caching allocator, cuBLAS and
// NCCL loaded with dlopen, and error reporting. Everything fails by throwing lav::Error (never exit or
// abort), which the N-API glue turns into a JavaScript exception.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../lav.h"
#include "allocator.h"

namespace lav {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** Throws lav::Error("<what>: cudaErrorX (code): description") unless e is cudaSuccess. */
void check(cudaError_t e, const std::string& what);

struct ProbeResult {
  int code = 0;          // cudaGetDeviceCount's cudaError_t
  std::string name;      // its cudaGetErrorName
  std::string message;   // its cudaGetErrorString
  int count = 0;
  int driverVersion = 0;   // cudaDriverGetVersion (0 without a driver)
  int runtimeVersion = 0;  // CUDART_VERSION this addon was built with (static cudart)
};
ProbeResult probe();

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0, sms = 0;
  size_t totalMem = 0;
  std::string cublasPath;
  int cublasVersion = 0;
};

struct GemmArgs {
  int transa, transb, m, n, k;
  const void* A; int lda; long long strideA;
  const void* B; int ldb; long long strideB;
  void* C; int ldc; long long strideC;
  int batch;
  int dtype;  // LavDType of A, B and C (float32, float64, bfloat16, float16)
  int tf32;   // allow TF32 tensor cores for float32
};

class Runtime {
 public:
  static Runtime& get();
  bool ready() const { return ready_; }
  /** Select the device, create the stream, load cuBLAS (searching libDirs first). Throws with the cause. */
  DeviceInfo init(int device, const std::vector<std::string>& libDirs);
  cudaStream_t stream() const { return stream_; }
  CachingAllocator& allocator();
  void* alloc(size_t bytes);
  void free(void* p);
  void synchronize(const std::string& what);
  /** Runs after a launch: a launch error names the kernel. */
  void launched(cudaError_t e, const char* kernel);
  /** Index-error record for gather/scatterAdd; synchronize() reads it, throws naming the op, and clears it. */
  LavIndexError* indexFlag();
  void gemm(const GemmArgs& g);

  // NCCL (process groups for src/dist)
  int ncclLoad(const std::vector<std::string>& libDirs, std::string* path);  // returns ncclGetVersion
  std::vector<char> ncclUniqueId();
  int ncclInitRank(int nranks, const std::vector<char>& id, int rank);
  void ncclDestroy(int comm);
  void ncclAllReduce(const void* s, void* r, size_t count, int dtype, int op, int comm);
  void ncclReduceScatter(const void* s, void* r, size_t recvcount, int dtype, int op, int comm);
  void ncclAllGather(const void* s, void* r, size_t sendcount, int dtype, int comm);
  void ncclBroadcast(const void* s, void* r, size_t count, int dtype, int root, int comm);
  void ncclGroupStart();
  void ncclGroupEnd();
  /** ncclCommAbort: frees the communicator even while a collective waits for a dead peer (the handle goes away). */
  void ncclAbort(int comm);
  /** ncclCommGetAsyncError: 0 (ncclSuccess) or the error code, with its text in *what. */
  int ncclAsyncError(int comm, std::string* what);

  // stream markers: wait for enqueued work (a collective) without blocking the thread
  /** Record an event on the stream after the work enqueued so far; returns its id. */
  int markerRecord();
  /** cudaEventQuery: true when the work before the marker has finished, false while pending; throws on a CUDA error. */
  bool markerDone(int id);
  void markerDestroy(int id);

 private:
  void requireReady(const char* what) const;
  bool ready_ = false;
  int device_ = -1;
  cudaStream_t stream_ = nullptr;
  CachingAllocator* alloc_ = nullptr;
  LavIndexError* flag_ = nullptr;
  LavIndexError* hostFlag_ = nullptr;
};

/** Where the dlopen searches went, for error messages: "dir/libcublas.so.13: <dlerror>; ...". */
void* openLibrary(const std::vector<std::string>& dirs, const std::vector<std::string>& names,
                  const std::vector<std::string>& preloads, std::string* found, std::string* tried);

}  // namespace lav

extern "C" const char* lav_proto_check_cublas(void);
extern "C" const char* lav_proto_check_nccl(void);

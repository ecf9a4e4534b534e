// The NCCL entry points lavender exposes (process groups for src/dist/), declared here because NCCL is
// loaded at run time (dlopen). proto_check.cpp static_asserts these against <nccl.h> where it is found.
#pragma once
#include <stddef.h>
#include <cuda_runtime_api.h>

struct ncclComm;  // the real header's opaque communicator type

namespace lav {
namespace nccl {

constexpr int UNIQUE_ID_BYTES = 128;
struct UniqueId { char internal[UNIQUE_ID_BYTES]; };
typedef ::ncclComm* Comm;
enum Result : int { Success = 0, UnhandledCudaError = 1, SystemError = 2, InternalError = 3, InvalidArgument = 4,
                    InvalidUsage = 5, RemoteError = 6, InProgress = 7 };
enum DataType : int { Int8 = 0, Uint8 = 1, Int32 = 2, Uint32 = 3, Int64 = 4, Uint64 = 5, Float16 = 6, Float32 = 7,
                      Float64 = 8, Bfloat16 = 9 };
enum RedOp : int { Sum = 0, Prod = 1, Max = 2, Min = 3, Avg = 4 };

typedef Result (*pfn_ncclGetVersion)(int* version);
typedef Result (*pfn_ncclGetUniqueId)(UniqueId* uniqueId);
typedef Result (*pfn_ncclCommInitRank)(Comm* comm, int nranks, UniqueId commId, int rank);
typedef Result (*pfn_ncclCommDestroy)(Comm comm);
// failure handling: abort a communicator whose peers are gone (returns even while its kernels hang), and
// the asynchronous error of a communicator (a remote failure or an internal error found by NCCL's threads)
typedef Result (*pfn_ncclCommAbort)(Comm comm);
typedef Result (*pfn_ncclCommGetAsyncError)(Comm comm, Result* asyncError);
typedef const char* (*pfn_ncclGetErrorString)(Result result);
typedef Result (*pfn_ncclAllReduce)(const void* sendbuff, void* recvbuff, size_t count, DataType datatype, RedOp op,
                                    Comm comm, cudaStream_t stream);
typedef Result (*pfn_ncclReduceScatter)(const void* sendbuff, void* recvbuff, size_t recvcount, DataType datatype,
                                        RedOp op, Comm comm, cudaStream_t stream);
typedef Result (*pfn_ncclAllGather)(const void* sendbuff, void* recvbuff, size_t sendcount, DataType datatype, Comm comm,
                                    cudaStream_t stream);
typedef Result (*pfn_ncclBroadcast)(const void* sendbuff, void* recvbuff, size_t count, DataType datatype, int root,
                                    Comm comm, cudaStream_t stream);
typedef Result (*pfn_ncclGroupStart)();
typedef Result (*pfn_ncclGroupEnd)();

}  // namespace nccl
}  // namespace lav

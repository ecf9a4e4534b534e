// The part of the cuBLAS API lavender calls, declared here because cuBLAS is loaded at run time (dlopen)
// and its headers need not exist where the addon is built. proto_check.cpp static_asserts these against
// <cublas_api.h> wherever that header is found at build time.
#pragma once
#include <stddef.h>
#include <cuda_runtime_api.h>
#include <library_types.h>

struct cublasContext;  // the real header's opaque handle type (same name, global namespace)

namespace lav {
namespace cublas {

typedef ::cublasContext* Handle;
enum Status : int { STATUS_SUCCESS = 0, STATUS_NOT_INITIALIZED = 1, STATUS_ALLOC_FAILED = 3, STATUS_INVALID_VALUE = 7,
                    STATUS_ARCH_MISMATCH = 8, STATUS_MAPPING_ERROR = 11, STATUS_EXECUTION_FAILED = 13,
                    STATUS_INTERNAL_ERROR = 14, STATUS_NOT_SUPPORTED = 15, STATUS_LICENSE_ERROR = 16 };
enum Operation : int { OP_N = 0, OP_T = 1 };
enum Math : int { DEFAULT_MATH = 0, PEDANTIC_MATH = 2, TF32_TENSOR_OP_MATH = 3 };
enum ComputeType : int { COMPUTE_32F = 68, COMPUTE_32F_PEDANTIC = 69, COMPUTE_64F = 70, COMPUTE_32F_FAST_TF32 = 77 };
enum GemmAlgo : int { GEMM_DEFAULT = -1 };

// function pointer types, one per entry point (the name after pfn_ is the exported symbol)
typedef Status (*pfn_cublasCreate_v2)(Handle* handle);
typedef Status (*pfn_cublasDestroy_v2)(Handle handle);
typedef Status (*pfn_cublasSetStream_v2)(Handle handle, cudaStream_t streamId);
typedef Status (*pfn_cublasSetMathMode)(Handle handle, Math mode);
typedef Status (*pfn_cublasSetWorkspace_v2)(Handle handle, void* workspace, size_t workspaceSizeInBytes);
typedef Status (*pfn_cublasGetVersion_v2)(Handle handle, int* version);
typedef const char* (*pfn_cublasGetStatusString)(Status status);
typedef Status (*pfn_cublasGemmStridedBatchedEx)(Handle handle, Operation transa, Operation transb, int m, int n, int k,
                                                 const void* alpha, const void* A, cudaDataType Atype, int lda,
                                                 long long int strideA, const void* B, cudaDataType Btype, int ldb,
                                                 long long int strideB, const void* beta, void* C, cudaDataType Ctype,
                                                 int ldc, long long int strideC, int batchCount, ComputeType computeType,
                                                 GemmAlgo algo);

}  // namespace cublas
}  // namespace lav

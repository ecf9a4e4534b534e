// Compile-time check of the dlopen prototypes (cublas_proto.h, nccl_proto.h) against the vendor headers.
// CMake defines LAV_CUBLAS_HEADER / LAV_NCCL_HEADER to the header it found (CUDA toolkit include dirs,
// LAVENDER_CUDA_INCLUDE_PATH, the nvidia-* Python wheels); where one is absent that half of the check is
// compiled out and the report says so. A mismatch fails the build with the function's name.
//
// A vendor function may be overloaded in C++ (CUDA 13's cublas_api.h adds inline overloads of
// cublasGemmStridedBatchedEx that take the old cudaDataType compute type), so `decltype(&fn)` is not
// usable. Instead each of our prototypes is translated into the vendor's types (vendor_of: our enums to
// theirs, pointers and everything else unchanged) and the overload with exactly that signature is picked
// by conversion (pick<P>(&fn)): no such overload fails the build naming lav_vendor_<fn>; then fn_eq
// checks that the picked signature is ABI-equivalent to ours (enum sizes, constness, arity).
#include <type_traits>
#include "cublas_proto.h"
#include "nccl_proto.h"

namespace lav_abi {
// ABI equivalence: identical types; enums/integers of the same size; pointers to equivalent pointees
// with the same constness; trivially copyable structs of the same size (passed by value, e.g. ncclUniqueId).
template <class A, class B>
constexpr bool eq() {
  if constexpr (std::is_same_v<A, B>) return true;
  else if constexpr ((std::is_enum_v<A> || std::is_integral_v<A>) && (std::is_enum_v<B> || std::is_integral_v<B>))
    return sizeof(A) == sizeof(B) && !std::is_same_v<A, bool> && !std::is_same_v<B, bool>;
  else if constexpr (std::is_pointer_v<A> && std::is_pointer_v<B>) {
    using PA = std::remove_pointer_t<A>;
    using PB = std::remove_pointer_t<B>;
    if constexpr (std::is_const_v<PA> != std::is_const_v<PB>) return false;
    else return eq<std::remove_cv_t<PA>, std::remove_cv_t<PB>>();
  } else if constexpr (std::is_class_v<A> && std::is_class_v<B>) {
    if constexpr (sizeof(A) > 0 && sizeof(B) > 0)
      return sizeof(A) == sizeof(B) && std::is_trivially_copyable_v<A> && std::is_trivially_copyable_v<B>;
    else return false;
  } else return false;
}
template <class F, class G>
struct fn_eq : std::false_type {};
template <class R1, class... A1, class R2, class... A2>
struct fn_eq<R1 (*)(A1...), R2 (*)(A2...)> {
  template <class... X>
  struct list {};
  static constexpr bool arity = sizeof...(A1) == sizeof...(A2);
  template <bool same>
  static constexpr bool params() {
    if constexpr (same) return (eq<A1, A2>() && ...);
    else return false;
  }
  static constexpr bool value = arity && eq<R1, R2>() && params<arity>();
};

// our type -> the vendor header's type; specialised for our enums once the header is included
template <class T>
struct vendor_of { using type = T; };
template <class T>
struct vendor_of<T*> { using type = typename vendor_of<T>::type*; };
template <class T>
struct vendor_of<const T> { using type = const typename vendor_of<T>::type; };
template <class F>
struct vendor_fn;
template <class R, class... A>
struct vendor_fn<R (*)(A...)> { using type = typename vendor_of<R>::type (*)(typename vendor_of<A>::type...); };
/** Selects, from a possibly overloaded name, the function whose type is exactly P. */
template <class P>
constexpr P pick(P f) { return f; }
}  // namespace lav_abi
#define LAV_VENDOR_TYPE(ours, theirs) \
  template <>                         \
  struct lav_abi::vendor_of<ours> { using type = theirs; };

// self-checks of the helper, so it is exercised even where no vendor header exists
static_assert(lav_abi::eq<int, lav::cublas::Status>(), "abi helper: enum vs int");
static_assert(!lav_abi::eq<const void*, void*>(), "abi helper: constness");
static_assert(!lav_abi::fn_eq<int (*)(int), int (*)(int, int)>::value, "abi helper: arity");
static_assert(sizeof(lav::nccl::UniqueId) == 128, "ncclUniqueId is 128 bytes");

#define LAV_STR2(x) #x
#define LAV_STR(x) LAV_STR2(x)

#if defined(LAV_CUBLAS_HEADER)
#include LAV_STR(LAV_CUBLAS_HEADER)
LAV_VENDOR_TYPE(lav::cublas::Status, cublasStatus_t)
LAV_VENDOR_TYPE(lav::cublas::Operation, cublasOperation_t)
LAV_VENDOR_TYPE(lav::cublas::Math, cublasMath_t)
LAV_VENDOR_TYPE(lav::cublas::ComputeType, cublasComputeType_t)
LAV_VENDOR_TYPE(lav::cublas::GemmAlgo, cublasGemmAlgo_t)
#define LAV_CHECK_CUBLAS(fn)                                                                                       \
  constexpr auto lav_vendor_##fn = lav_abi::pick<lav_abi::vendor_fn<lav::cublas::pfn_##fn>::type>(&::fn);         \
  static_assert(lav_abi::fn_eq<std::remove_cv_t<decltype(lav_vendor_##fn)>, lav::cublas::pfn_##fn>::value, #fn ": prototype in cublas_proto.h differs from cublas_api.h");
LAV_CHECK_CUBLAS(cublasCreate_v2)
LAV_CHECK_CUBLAS(cublasDestroy_v2)
LAV_CHECK_CUBLAS(cublasSetStream_v2)
LAV_CHECK_CUBLAS(cublasSetMathMode)
LAV_CHECK_CUBLAS(cublasSetWorkspace_v2)
LAV_CHECK_CUBLAS(cublasGetVersion_v2)
LAV_CHECK_CUBLAS(cublasGetStatusString)
LAV_CHECK_CUBLAS(cublasGemmStridedBatchedEx)
static_assert((int)CUBLAS_STATUS_SUCCESS == lav::cublas::STATUS_SUCCESS && (int)CUBLAS_STATUS_NOT_SUPPORTED == lav::cublas::STATUS_NOT_SUPPORTED, "cublasStatus_t values");
static_assert((int)CUBLAS_OP_N == lav::cublas::OP_N && (int)CUBLAS_OP_T == lav::cublas::OP_T, "cublasOperation_t values");
static_assert((int)CUBLAS_DEFAULT_MATH == lav::cublas::DEFAULT_MATH && (int)CUBLAS_TF32_TENSOR_OP_MATH == lav::cublas::TF32_TENSOR_OP_MATH && (int)CUBLAS_PEDANTIC_MATH == lav::cublas::PEDANTIC_MATH, "cublasMath_t values");
static_assert((int)CUBLAS_COMPUTE_32F == lav::cublas::COMPUTE_32F && (int)CUBLAS_COMPUTE_64F == lav::cublas::COMPUTE_64F && (int)CUBLAS_COMPUTE_32F_FAST_TF32 == lav::cublas::COMPUTE_32F_FAST_TF32 && (int)CUBLAS_COMPUTE_32F_PEDANTIC == lav::cublas::COMPUTE_32F_PEDANTIC, "cublasComputeType_t values");
static_assert((int)CUBLAS_GEMM_DEFAULT == lav::cublas::GEMM_DEFAULT, "cublasGemmAlgo_t values");
#define LAV_CUBLAS_REPORT "checked 8 cuBLAS prototypes and their enum values against " LAV_STR(LAV_CUBLAS_HEADER)
#else
#define LAV_CUBLAS_REPORT "skipped: cublas_api.h not found at build time (set LAVENDER_CUDA_INCLUDE_PATH); the abi helper self-checks passed"
#endif

#if defined(LAV_NCCL_HEADER)
#include LAV_STR(LAV_NCCL_HEADER)
LAV_VENDOR_TYPE(lav::nccl::Result, ncclResult_t)
LAV_VENDOR_TYPE(lav::nccl::DataType, ncclDataType_t)
LAV_VENDOR_TYPE(lav::nccl::RedOp, ncclRedOp_t)
LAV_VENDOR_TYPE(lav::nccl::UniqueId, ncclUniqueId)
#define LAV_CHECK_NCCL(fn)                                                                                   \
  constexpr auto lav_vendor_##fn = lav_abi::pick<lav_abi::vendor_fn<lav::nccl::pfn_##fn>::type>(&::fn);    \
  static_assert(lav_abi::fn_eq<std::remove_cv_t<decltype(lav_vendor_##fn)>, lav::nccl::pfn_##fn>::value, #fn ": prototype in nccl_proto.h differs from nccl.h");
LAV_CHECK_NCCL(ncclGetVersion)
LAV_CHECK_NCCL(ncclGetUniqueId)
LAV_CHECK_NCCL(ncclCommInitRank)
LAV_CHECK_NCCL(ncclCommDestroy)
LAV_CHECK_NCCL(ncclCommAbort)
LAV_CHECK_NCCL(ncclCommGetAsyncError)
LAV_CHECK_NCCL(ncclGetErrorString)
LAV_CHECK_NCCL(ncclAllReduce)
LAV_CHECK_NCCL(ncclReduceScatter)
LAV_CHECK_NCCL(ncclAllGather)
LAV_CHECK_NCCL(ncclBroadcast)
LAV_CHECK_NCCL(ncclGroupStart)
LAV_CHECK_NCCL(ncclGroupEnd)
static_assert(sizeof(ncclUniqueId) == sizeof(lav::nccl::UniqueId) && NCCL_UNIQUE_ID_BYTES == lav::nccl::UNIQUE_ID_BYTES, "ncclUniqueId size");
static_assert((int)ncclSuccess == lav::nccl::Success && (int)ncclInProgress == lav::nccl::InProgress, "ncclResult_t values");
static_assert((int)ncclInt32 == lav::nccl::Int32 && (int)ncclInt64 == lav::nccl::Int64 && (int)ncclFloat16 == lav::nccl::Float16 && (int)ncclFloat32 == lav::nccl::Float32 && (int)ncclFloat64 == lav::nccl::Float64 && (int)ncclBfloat16 == lav::nccl::Bfloat16 && (int)ncclUint8 == lav::nccl::Uint8, "ncclDataType_t values");
static_assert((int)ncclSum == lav::nccl::Sum && (int)ncclProd == lav::nccl::Prod && (int)ncclMax == lav::nccl::Max && (int)ncclMin == lav::nccl::Min && (int)ncclAvg == lav::nccl::Avg, "ncclRedOp_t values");
#define LAV_NCCL_REPORT "checked 13 NCCL prototypes and their enum values against " LAV_STR(LAV_NCCL_HEADER)
#else
#define LAV_NCCL_REPORT "skipped: nccl.h not found at build time (set LAVENDER_CUDA_INCLUDE_PATH); the abi helper self-checks passed"
#endif

extern "C" const char* lav_proto_check_cublas(void) { return LAV_CUBLAS_REPORT; }
extern "C" const char* lav_proto_check_nccl(void) { return LAV_NCCL_REPORT; }

// The elementwise ops as functors: each is a type, so a kernel is compiled per op (no per-element op
// switch). operator() is a template on the compute type C: float in the specialised kernels, double in
// the generic ones when an operand is float64/int32/int64 (so integer results match the cpu reference).
// lav_with_unary / lav_with_binary turn a runtime op code into the functor type, once per launch.
#pragma once
#include "common.cuh"

#define LAV_UNARY(Name, expr)                  \
  struct Name {                                \
    template <class C>                         \
    LAV_DEV C operator()(C x) const { return expr; } \
  };
#define LAV_BINARY(Name, cmp, expr)                    \
  struct Name {                                        \
    static constexpr bool compare = cmp;               \
    template <class C>                                 \
    LAV_DEV C operator()(C a, C b) const { return expr; } \
  };

namespace lav_op {

template <class C>
LAV_DEV C sigmoid(C x) { return x >= (C)0 ? (C)1 / ((C)1 + exp(-x)) : exp(x) / ((C)1 + exp(x)); }
template <class C>
LAV_DEV C nan_or(C a, C b, C v) { return (isnan(a) || isnan(b)) ? (C)NAN : v; }

LAV_UNARY(Neg, -x)
LAV_UNARY(Abs, fabs(x))
LAV_UNARY(Exp, exp(x))
LAV_UNARY(Log, log(x))
LAV_UNARY(Sqrt, sqrt(x))
LAV_UNARY(Rsqrt, (C)1 / sqrt(x))
LAV_UNARY(Sin, sin(x))
LAV_UNARY(Cos, cos(x))
LAV_UNARY(Tanh, tanh(x))
LAV_UNARY(Sigmoid, sigmoid(x))
LAV_UNARY(Silu, x * sigmoid(x))
LAV_UNARY(Gelu, (C)0.5 * x * ((C)1 + erf(x * (C)0.70710678118654752440)))
LAV_UNARY(GeluTanh, (C)0.5 * x * ((C)1 + tanh((C)0.79788456080286535588 * (x + (C)0.044715 * x * x * x))))
LAV_UNARY(Relu, x > (C)0 ? x : (C)0)
LAV_UNARY(Erf, erf(x))
LAV_UNARY(Erfinv, erfinv(x))
LAV_UNARY(Sign, x > (C)0 ? (C)1 : x < (C)0 ? (C)-1 : (C)0)
LAV_UNARY(Floor, floor(x))
LAV_UNARY(Ceil, ceil(x))
LAV_UNARY(Round, rint(x))
LAV_UNARY(Reciprocal, (C)1 / x)
LAV_UNARY(Square, x * x)
LAV_UNARY(Not, lav_truthy(x) ? (C)0 : (C)1)
LAV_UNARY(Identity, x)

LAV_BINARY(Add, false, a + b)
LAV_BINARY(Sub, false, a - b)
LAV_BINARY(Mul, false, a * b)
LAV_BINARY(Div, false, a / b)
LAV_BINARY(Pow, false, pow(a, b))
LAV_BINARY(Maximum, false, nan_or(a, b, a > b ? a : b))
LAV_BINARY(Minimum, false, nan_or(a, b, a < b ? a : b))
LAV_BINARY(Eq, true, (C)(a == b))
LAV_BINARY(Ne, true, (C)(a != b))
LAV_BINARY(Lt, true, (C)(a < b))
LAV_BINARY(Le, true, (C)(a <= b))
LAV_BINARY(Gt, true, (C)(a > b))
LAV_BINARY(Ge, true, (C)(a >= b))
LAV_BINARY(And, true, (C)(lav_truthy(a) && lav_truthy(b)))
LAV_BINARY(Or, true, (C)(lav_truthy(a) || lav_truthy(b)))
// the scalar-first forms of the non-commutative ops (s - x, s / x, s ** x); comparisons swap instead
LAV_BINARY(RSub, false, b - a)
LAV_BINARY(RDiv, false, b / a)
LAV_BINARY(RPow, false, pow(b, a))

/** x op s with the scalar s a kernel argument (a member of the functor), s already in x's dtype. */
template <class Op, class S>
struct WithScalar {
  S s;
  template <class C>
  LAV_DEV C operator()(C x) const { return Op{}(x, (C)s); }
};

/** A constant (fill). */
template <class S>
struct Const {
  S v;
  template <class C>
  LAV_DEV C operator()() const { return (C)v; }
};

struct Where {
  template <class C>
  LAV_DEV C operator()(C c, C a, C b) const { return lav_truthy(c) ? a : b; }
};

/** dst + src (copy with accumulate): operands (dst, src). */
using Accumulate = Add;

/** g * d silu(x) / dx: operands (x, g). */
struct SiluBackward {
  template <class C>
  LAV_DEV C operator()(C x, C g) const { C s = sigmoid(x); return g * s * ((C)1 + x * ((C)1 - s)); }
};
/** silu(a) * b. */
struct Swiglu {
  template <class C>
  LAV_DEV C operator()(C a, C b) const { return a * sigmoid(a) * b; }
};
/** d/da of silu(a) * b times g: operands (a, b, g). */
struct SwigluDa {
  template <class C>
  LAV_DEV C operator()(C a, C b, C g) const { C s = sigmoid(a); return g * b * s * ((C)1 + a * ((C)1 - s)); }
};
/** d/db of silu(a) * b times g: operands (a, g). */
struct SwigluDb {
  template <class C>
  LAV_DEV C operator()(C a, C g) const { return g * a * sigmoid(a); }
};

/**
 * x * (1 + scale) + shift (adaLN's modulate), rounded as the composed ops round: 1 + scale in the scale's
 * storage type Ts, then a float32 multiply and a float32 add (no fused multiply-add): operands (x, scale,
 * shift). Needs map.cuh's lav_f / lav_from_f.
 */
template <class Ts>
struct Modulate {
  template <class C>
  LAV_DEV C operator()(C x, C scale, C shift) const {
    const float s1 = lav_f(lav_from_f<Ts>(1.f + (float)scale));
    return (C)__fadd_rn(__fmul_rn((float)x, s1), (float)shift);
  }
};

/**
 * x + gate * y (adaLN's gated residual), rounded as the composed ops round: gate * y in their storage type
 * Tg, then a float32 add: operands (x, gate, y).
 */
template <class Tg>
struct GatedAdd {
  template <class C>
  LAV_DEV C operator()(C x, C gate, C y) const {
    const float m = lav_f(lav_from_f<Tg>(__fmul_rn((float)gate, (float)y)));
    return (C)__fadd_rn((float)x, m);
  }
};

}  // namespace lav_op

/** Calls fn(Functor{}) for a unary op code; false for an unknown code. */
template <class Fn>
bool lav_with_unary(int op, Fn&& fn) {
  using namespace lav_op;
  switch (op) {
    case LAV_NEG: fn(Neg{}); return true;
    case LAV_ABS: fn(Abs{}); return true;
    case LAV_EXP: fn(Exp{}); return true;
    case LAV_LOG: fn(Log{}); return true;
    case LAV_SQRT: fn(Sqrt{}); return true;
    case LAV_RSQRT: fn(Rsqrt{}); return true;
    case LAV_SIN: fn(Sin{}); return true;
    case LAV_COS: fn(Cos{}); return true;
    case LAV_TANH: fn(Tanh{}); return true;
    case LAV_SIGMOID: fn(Sigmoid{}); return true;
    case LAV_SILU: fn(Silu{}); return true;
    case LAV_GELU: fn(Gelu{}); return true;
    case LAV_GELU_TANH: fn(GeluTanh{}); return true;
    case LAV_RELU: fn(Relu{}); return true;
    case LAV_ERF: fn(Erf{}); return true;
    case LAV_ERFINV: fn(Erfinv{}); return true;
    case LAV_SIGN: fn(Sign{}); return true;
    case LAV_FLOOR: fn(Floor{}); return true;
    case LAV_CEIL: fn(Ceil{}); return true;
    case LAV_ROUND: fn(Round{}); return true;
    case LAV_RECIPROCAL: fn(Reciprocal{}); return true;
    case LAV_SQUARE: fn(Square{}); return true;
    case LAV_NOT: fn(Not{}); return true;
    default: return false;
  }
}

/** Calls fn(Functor{}) for a binary op code (LAV_RSUB.. included); false for an unknown code. */
template <class Fn>
bool lav_with_binary(int op, Fn&& fn) {
  using namespace lav_op;
  switch (op) {
    case LAV_ADD: fn(Add{}); return true;
    case LAV_SUB: fn(Sub{}); return true;
    case LAV_MUL: fn(Mul{}); return true;
    case LAV_DIV: fn(Div{}); return true;
    case LAV_POW: fn(Pow{}); return true;
    case LAV_MAXIMUM: fn(Maximum{}); return true;
    case LAV_MINIMUM: fn(Minimum{}); return true;
    case LAV_EQ: fn(Eq{}); return true;
    case LAV_NE: fn(Ne{}); return true;
    case LAV_LT: fn(Lt{}); return true;
    case LAV_LE: fn(Le{}); return true;
    case LAV_GT: fn(Gt{}); return true;
    case LAV_GE: fn(Ge{}); return true;
    case LAV_AND: fn(And{}); return true;
    case LAV_OR: fn(Or{}); return true;
    case LAV_RSUB: fn(RSub{}); return true;
    case LAV_RDIV: fn(RDiv{}); return true;
    case LAV_RPOW: fn(RPow{}); return true;
    default: return false;
  }
}

// fastgan element functions: every loss term and derivative of the native kernels, written
// once for both devices.
//
// The formulas below are templates over the value type V:
//   float / double                     one element, on the CUDA device (cuda.cu) or the host
//   at::vec::Vectorized<float/double>  one CPU vector (cpu.cpp), lane by lane the same math
// They use C++ operators (+ - * / and the comparisons < <= > ==, which give a bool for a
// scalar and a lane mask for a vector) and, for everything else, the primitives of Prim<V>:
//   Prim<V>::select(m, a, b)   a where m, else b (both sides are computed for vectors)
//   Prim<V>::neg(a)            -a
//   Prim<V>::exp_neg_abs(s)    exp(-|s|)
//   Prim<V>::add_log1p(x, e)   x + log1p(e) for e in [0, 1] (one primitive, so that the CPU's
//                              float series ends in one explicit FMA in every loop, rather
//                              than wherever the compiler happens to contract it)
// This header specialises Prim for float and double (C10_HOST_DEVICE: the libm / CUDA math
// functions); cpu.cpp specialises it for at::vec::Vectorized<float> (at::vec's fast exp_u20,
// a short atanh series for log1p) and Vectorized<double> (SLEEF exp and log1p).  A class
// template specialisation is found at the formula's instantiation, so cpu.cpp's
// specialisations need not be visible here.
//
// Numerics are fixed by the formulas' branch structure, the same on every device:
//   relu keeps nan (as torch.relu); mul0(a, b) = a·b with 0·∞ = 0 (the label products);
//   bce(s, t) = (1 − t)·relu(s) + t·relu(−s) + log1p(exp(−|s|)), finite in both tails;
//   dbce(s, t) = sigmoid(s) − t from the branch that does not cancel in each tail;
//   hinge's derivative is 0 at the margin (as threshold_backward).
// The differentiable (create_graph) backward of the native backend is a separate, ATen
// tensor-level rule in ops.cpp; tests/test_native.py and the oracle tests check both.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <type_traits>

#include "fastgan.h"

namespace fastgan {
namespace elem {

template <typename V>
struct Prim;  // specialised below for float / double, in cpu.cpp for at::vec::Vectorized

template <typename A>
struct ScalarPrim {
  static C10_HOST_DEVICE inline A select(bool m, const A& a, const A& b) { return m ? a : b; }
  static C10_HOST_DEVICE inline A neg(const A& a) { return -a; }
#if defined(__CUDA_ARCH__)
  static C10_HOST_DEVICE inline A exp_neg_abs(const A& s) { return ::exp(-::fabs(s)); }
  static C10_HOST_DEVICE inline A add_log1p(const A& x, const A& e) { return x + ::log1p(e); }
  static C10_HOST_DEVICE inline A sqrt(const A& q) { return ::sqrt(q); }
#else
  static C10_HOST_DEVICE inline A exp_neg_abs(const A& s) { return std::exp(-std::fabs(s)); }
  static C10_HOST_DEVICE inline A add_log1p(const A& x, const A& e) { return x + std::log1p(e); }
  static C10_HOST_DEVICE inline A sqrt(const A& q) { return std::sqrt(q); }
#endif
};
template <>
struct Prim<float> : ScalarPrim<float> {};
template <>
struct Prim<double> : ScalarPrim<double> {};

// ---------------------------------------------------------------- building blocks

template <typename V>
C10_HOST_DEVICE inline V relu(const V& z) {  // keeps nan, as torch.relu
  return Prim<V>::select(z < V(0), V(0), z);
}

template <typename V>
C10_HOST_DEVICE inline V mul0(const V& a, const V& b) {  // a · b with 0 · ∞ = 0
  return Prim<V>::select(a == V(0), V(0), a * b);
}

// BCEwithlogits(s, t) given e = exp(−|s|), so that one exp serves the loss and its derivative
template <typename V>
C10_HOST_DEVICE inline V bce_e(const V& s, const V& t, const V& e) {
  return Prim<V>::add_log1p(mul0(V(1) - t, relu(s)) + mul0(t, relu(Prim<V>::neg(s))), e);
}

// sigmoid(s) − t given e = exp(−|s|): accurate in both tails
template <typename V>
C10_HOST_DEVICE inline V dbce_e(const V& s, const V& t, const V& e) {
  const V small = e / (V(1) + e);
  return Prim<V>::select(s > V(0), (V(1) - t) - small, small - t);
}

template <typename V>
C10_HOST_DEVICE inline V bce(const V& s, const V& t) {
  return bce_e(s, t, Prim<V>::exp_neg_abs(s));
}

template <typename V>
C10_HOST_DEVICE inline V dbce(const V& s, const V& t) {
  return dbce_e(s, t, Prim<V>::exp_neg_abs(s));
}

// ---------------------------------------------------------------- the pair losses' terms

// term(s; sgn, t) of a pair loss for KIND (fastgan.h's Kind), and d term / d s
template <int KIND, typename V>
C10_HOST_DEVICE inline V term(const V& s, const V& sgn, const V& t) {
  if constexpr (KIND == BCE) {
    return sgn * bce(s, t);
  } else if constexpr (KIND == HINGE) {
    return relu(t + sgn * s);
  } else if constexpr (KIND == LSGAN) {
    const V d = s - t;
    return V(0.5) * d * d;
  } else {
    return sgn * s;
  }
}

template <int KIND, typename V>
C10_HOST_DEVICE inline V dterm(const V& s, const V& sgn, const V& t) {
  if constexpr (KIND == BCE) {
    return sgn * dbce(s, t);
  } else if constexpr (KIND == HINGE) {
    return Prim<V>::select((t + sgn * s) <= V(0), V(0), sgn);  // zero at the margin, as threshold_backward
  } else if constexpr (KIND == LSGAN) {
    return s - t;
  } else {
    return sgn;
  }
}

// the term and, in d, its derivative; BCE shares exp(−|s|) between them
template <int KIND, typename V>
C10_HOST_DEVICE inline V term_and_dterm(const V& s, const V& sgn, const V& t, V& d) {
  if constexpr (KIND == BCE) {
    const V e = Prim<V>::exp_neg_abs(s);
    d = sgn * dbce_e(s, t, e);
    return sgn * bce_e(s, t, e);
  } else {
    d = dterm<KIND>(s, sgn, t);
    return term<KIND>(s, sgn, t);
  }
}

// the kind chosen at run time (one switch per element, as the CUDA kernels take it)
template <typename V>
C10_HOST_DEVICE inline V term(int kind, const V& s, const V& sgn, const V& t) {
  switch (kind) {
    case BCE: return term<BCE>(s, sgn, t);
    case HINGE: return term<HINGE>(s, sgn, t);
    case LSGAN: return term<LSGAN>(s, sgn, t);
    default: return term<LINEAR>(s, sgn, t);
  }
}

template <typename V>
C10_HOST_DEVICE inline V dterm(int kind, const V& s, const V& sgn, const V& t) {
  switch (kind) {
    case BCE: return dterm<BCE>(s, sgn, t);
    case HINGE: return dterm<HINGE>(s, sgn, t);
    case LSGAN: return dterm<LSGAN>(s, sgn, t);
    default: return dterm<LINEAR>(s, sgn, t);
  }
}

// ---------------------------------------------------------------- the BCE drop-in

// w · [bce(s, t) + (p − 1)·t·softplus(−s)] (with 0 · ∞ = 0); w and p are read only when
// HAS_W / HAS_PW.  softplus(−s) = relu(−s) + log1p(exp(−|s|)).
template <bool HAS_W, bool HAS_PW, typename V>
C10_HOST_DEVICE inline V bce_value(const V& s, const V& t, const V& w, const V& p) {
  const V e = Prim<V>::exp_neg_abs(s);
  V v = bce_e(s, t, e);
  if constexpr (HAS_PW) v = v + mul0((p - V(1)) * t, Prim<V>::add_log1p(relu(Prim<V>::neg(s)), e));
  if constexpr (HAS_W) v = v * w;
  return v;
}

// its derivative in s: w · [dbce(s, t) + (p − 1)·t·dbce(s, 1)]  ((p − 1)·t·dbce(s, 1) = −(p − 1)·t·sigmoid(−s))
template <bool HAS_W, bool HAS_PW, typename V>
C10_HOST_DEVICE inline V bce_deriv(const V& s, const V& t, const V& w, const V& p) {
  const V e = Prim<V>::exp_neg_abs(s);
  V d = dbce_e(s, t, e);
  if constexpr (HAS_PW) d = d + (p - V(1)) * t * dbce_e(s, V(1), e);
  if constexpr (HAS_W) d = d * w;
  return d;
}

// ---------------------------------------------------------------- the gradient-norm penalty

// per sample, from its squared gradient norm q: q when center == 0, else (‖g‖ − c)², with
// ‖g‖ − c clamped at 0 when one-sided
template <typename A>
C10_HOST_DEVICE inline A penalty_term(A q, double center, bool one_sided) {
  if (center == 0) return q;
  A d = Prim<A>::sqrt(q) - static_cast<A>(center);
  if (one_sided && d < A(0)) d = A(0);
  return d * d;
}

// d penalty_term / d g = k · g: k = 2 at center 0; 0 for a zero row (finite, zero gradient)
template <typename A>
C10_HOST_DEVICE inline A penalty_coef(A q, double center, bool one_sided) {
  if (center == 0) return A(2);
  if (q == A(0)) return A(0);
  const A n = Prim<A>::sqrt(q);
  A d = n - static_cast<A>(center);
  if (one_sided && d < A(0)) d = A(0);
  return A(2) * d / n;
}

}  // namespace elem
}  // namespace fastgan

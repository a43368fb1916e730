// The CPU kernels' shared parts (csrc/cpu.cpp: the per-tensor ops; csrc/multi_cpu.cpp: the
// list and feature-matching ops): accumulation types, loads and stores, at::vec's vector
// primitives for elementwise.h, the chunked drivers, one side of a pair loss, the kind
// dispatch.  Everything here is internal to each translation unit that includes it.
#pragma once

// Use the AVX2 implementation of at::vec when the compiler targets it (the build
// passes -march=native); otherwise at::vec's portable implementation.
#if defined(__AVX2__) && defined(__FMA__) && !defined(CPU_CAPABILITY_AVX2) && !defined(CPU_CAPABILITY_DEFAULT)
#define CPU_CAPABILITY_AVX2
#endif

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cmath>
#include <limits>

#include "elementwise.h"
#include "fastgan.h"

namespace fastgan {
namespace {

using at::vec::Vectorized;

template <typename T>
struct Acc { using type = float; };
template <>
struct Acc<double> { using type = double; };

// ---------------------------------------------------------------- loads / stores

template <typename acc_t, typename scalar_t>
inline Vectorized<acc_t> load(const scalar_t* p, int64_t count = Vectorized<acc_t>::size()) {
  using V = Vectorized<acc_t>;
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    return count == V::size() ? V::loadu(p) : V::loadu(p, count);
  } else {
    alignas(64) acc_t tmp[V::size()];
    for (int64_t i = 0; i < V::size(); i++) tmp[i] = i < count ? static_cast<acc_t>(p[i]) : acc_t(0);
    return V::loadu(tmp);
  }
}

template <typename acc_t, typename scalar_t>
inline void store(scalar_t* p, const Vectorized<acc_t>& v, int64_t count = Vectorized<acc_t>::size()) {
  using V = Vectorized<acc_t>;
  if constexpr (std::is_same_v<acc_t, scalar_t>) {
    v.store(p, count);
  } else {
    alignas(64) acc_t tmp[V::size()];
    v.store(tmp);
    for (int64_t i = 0; i < count; i++) p[i] = static_cast<scalar_t>(tmp[i]);
  }
}

// sum of the first `count` lanes, in lane order
template <typename acc_t>
inline acc_t lane_sum(const Vectorized<acc_t>& v, int64_t count = Vectorized<acc_t>::size()) {
  alignas(64) acc_t tmp[Vectorized<acc_t>::size()];
  v.store(tmp);
  acc_t s = 0;
  for (int64_t i = 0; i < count; i++) s += tmp[i];
  return s;
}

// ---------------------------------------------------------------- the vector primitives

}  // namespace

namespace elem {

// the primitives of elementwise.h's formulas on CPU vectors: comparisons give lane masks
// (all bits set), select blends; exp: at::vec's fast polynomial exp_u20 for float (about
// 2 ulp), SLEEF's exp for double
template <>
struct Prim<Vectorized<float>> {
  using V = Vectorized<float>;
  static inline V select(const V& m, const V& a, const V& b) { return V::blendv(b, a, m); }
  static inline V neg(const V& a) { return a.neg(); }
  static inline V exp_neg_abs(const V& s) { return s.abs().neg().exp_u20(); }
  // x + log1p(e) for e in [0, 1]: log1p(e) = 2·atanh(z) with z = e / (2 + e) <= 1/3, its odd
  // series to z^15 (truncation below 2e-9 relative, under float's epsilon), a division and
  // nine FMAs instead of a SLEEF log1p call
  static inline V add_log1p(const V& x, const V& e) {
    const V z = e / (V(2) + e);
    const V z2 = z * z;
    V p = V(1.0f / 15);
    p = at::vec::fmadd(p, z2, V(1.0f / 13));
    p = at::vec::fmadd(p, z2, V(1.0f / 11));
    p = at::vec::fmadd(p, z2, V(1.0f / 9));
    p = at::vec::fmadd(p, z2, V(1.0f / 7));
    p = at::vec::fmadd(p, z2, V(1.0f / 5));
    p = at::vec::fmadd(p, z2, V(1.0f / 3));
    p = at::vec::fmadd(p, z2, V(1));
    return at::vec::fmadd(V(2) * z, p, x);
  }
};

template <>
struct Prim<Vectorized<double>> {
  using V = Vectorized<double>;
  static inline V select(const V& m, const V& a, const V& b) { return V::blendv(b, a, m); }
  static inline V neg(const V& a) { return a.neg(); }
  static inline V exp_neg_abs(const V& s) { return s.abs().neg().exp(); }  // SLEEF
  static inline V add_log1p(const V& x, const V& e) { return x + e.log1p(); }  // SLEEF
};

}  // namespace elem

namespace {

using elem::term;
using elem::dterm;
using elem::term_and_dterm;

// ---------------------------------------------------------------- generic drivers

// Σ f(i, vector at i) over one chunk [begin, end): two vector accumulators, the tail lane
// by lane; f returns a vector of terms.  Every chunked reduction (one tensor or a list)
// sums its chunks with this, so a tensor's sum is the same bits in both.
template <typename acc_t, typename F>
acc_t chunk_sum(int64_t begin, int64_t end, const F& f) {
  using V = Vectorized<acc_t>;
  V a0(0), a1(0);
  int64_t i = begin;
  for (; i + 2 * V::size() <= end; i += 2 * V::size()) {
    a0 += f(i, V::size());
    a1 += f(i + V::size(), V::size());
  }
  acc_t tail = 0;
  for (; i < end; i += V::size()) {
    const int64_t cnt = std::min<int64_t>(V::size(), end - i);
    tail += lane_sum<acc_t>(f(i, cnt), cnt);
  }
  return lane_sum<acc_t>(a0 + a1) + tail;
}

// Σ f(i, vector at i) over [0, n) in fixed chunks, added in chunk order
template <typename acc_t, typename F>
acc_t chunked_sum(int64_t n, const F& f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  if (chunks == 0) return acc_t(0);
  std::vector<acc_t> partial(chunks, acc_t(0));
  at::parallel_for(0, chunks, 4, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const int64_t begin = c * kChunk;
      partial[c] = chunk_sum<acc_t>(begin, std::min(n, begin + kChunk), f);
    }
  });
  acc_t s = 0;
  for (acc_t p : partial) s += p;
  return s;
}

// out[i] = f(i) over [b, e), serially
template <typename acc_t, typename scalar_t, typename F>
void elementwise_range(scalar_t* out, int64_t b, int64_t e, const F& f) {
  using V = Vectorized<acc_t>;
  for (int64_t i = b; i < e; i += V::size()) {
    const int64_t cnt = std::min<int64_t>(V::size(), e - i);
    store<acc_t>(out + i, f(i, cnt), cnt);
  }
}

// out[i] = f(i) over [0, n), in parallel above kChunk elements
template <typename acc_t, typename scalar_t, typename F>
void elementwise(scalar_t* out, int64_t n, const F& f) {
  at::parallel_for(0, n, 2 * kChunk, [&](int64_t b, int64_t e) { elementwise_range<acc_t>(out, b, e, f); });
}

// A reduced pair loss from its sides' sums: w_r·s_r + w_f·s_f, each side's weighted sum
// rounded to acc_t, then to double and added (as the kernels do); nan for the mean of an
// empty side.  add_side once per side, then side_total.
template <typename acc_t>
inline void add_side(double& total, bool& empty_mean, acc_t s, int64_t n, int64_t reduction) {
  empty_mean |= (reduction == MEAN && n == 0);
  total += static_cast<double>(static_cast<acc_t>(mean_weight(reduction, n)) * s);
}
template <typename acc_t>
inline acc_t side_total(double total, bool empty_mean) {
  // the two side sums are added in the accumulation dtype, as the kernels do
  return empty_mean ? std::numeric_limits<acc_t>::quiet_NaN() : static_cast<acc_t>(total);
}

// the factor of a reduced side's derivative: the upstream gradient times the mean's weight
template <typename acc_t>
inline acc_t pair_grad_scale(double up, int64_t reduction, int64_t n) {
  return static_cast<acc_t>(up) * static_cast<acc_t>(mean_weight(reduction, n));
}

// One side of a pair loss over a contiguous tensor x: its terms and its derivatives
// times a factor c (a vector, or the upstream gradient element by element), from
// elementwise.h's term / dterm.  The per-tensor ops and the list ops (pair_list_*) read
// their elements through it.
template <typename scalar_t, int KIND>
struct PairSide {
  using acc_t = typename Acc<scalar_t>::type;
  using V = Vectorized<acc_t>;
  const scalar_t* x;
  V sgn, t;
  PairSide(const scalar_t* x_, double sgn_, double t_)
      : x(x_), sgn(static_cast<acc_t>(sgn_)), t(static_cast<acc_t>(t_)) {}
  V value(int64_t i, int64_t cnt) const { return term<KIND>(load<acc_t>(x + i, cnt), sgn, t); }
  V grad(const V& c, int64_t i, int64_t cnt) const { return c * dterm<KIND>(load<acc_t>(x + i, cnt), sgn, t); }
};

template <typename F>
void dispatch_kind(int64_t kind, const F& f) {
  switch (kind) {
    case BCE: f(std::integral_constant<int, BCE>()); break;
    case HINGE: f(std::integral_constant<int, HINGE>()); break;
    case LSGAN: f(std::integral_constant<int, LSGAN>()); break;
    case LINEAR: f(std::integral_constant<int, LINEAR>()); break;
    default: TORCH_CHECK(false, "fastgan: unknown loss kind ", kind);
  }
}

inline void check_cpu(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), "fastgan native CPU op: ", name, " must be a CPU tensor, got ", x.device());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "fastgan native op: ", name, " must be floating point, got ",
              x.scalar_type());
}

}  // namespace
}  // namespace fastgan

// fastgan native CPU kernels of the relativistic losses, RaGAN and RpGAN: the raw ops
// ragan_fwd / ragan_bwd / rpgan_fwd / rpgan_bwd, and their C++ autograd (RaganFn, RpganFn:
// the ops ragan_loss / rpgan_loss).  The math is in kernels/relativistic.py's docstring.
// RaGAN: the two batch sums, then one pass per side computing BCE(x − ȳ, t_r) / BCE(y − x̄,
// t_f) and, when reduced, in the same pass Σa, Σb (a = σ(x − ȳ) − t_r, b = σ(y − x̄) − t_f),
// returned as stats = (Σx, Σy, Σa, Σb); the backward is one element-wise pass:
//   ∂/∂x_k = c_r·a_k − k_r,  ∂/∂y_k = c_f·b_k − k_f,
//   reduced:  c_r = up·w_r, k_r = up·w_f·Σb / n_r (and symmetrically),
//   "none":   c = the upstream element, k_r = Σ g_f·b / n_r (one reduction pass first).
// RpGAN: s = ±(x − y), term BCE(s, 1) = softplus(−s), one pass each way over both tensors.
// Element formulas: elementwise.h's, on at::vec vectors through the Lanes wrapper below.
// Reductions over fixed kChunk-element chunks (at::parallel_for), added in chunk order: the
// result does not depend on the number of threads.  CPU only (on CUDA the native backend
// runs the reference; the CUDA path of the fused kernels is the Triton backend).

#if defined(__AVX2__) && defined(__FMA__) && !defined(CPU_CAPABILITY_AVX2) && !defined(CPU_CAPABILITY_DEFAULT)
#define CPU_CAPABILITY_AVX2
#endif

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <limits>
#include <vector>

#include "autograd_rules.h"
#include "elementwise.h"
#include "fastgan.h"

namespace fastgan {
namespace {

using at::vec::Vectorized;

// one CPU vector of A as the value type of elementwise.h's formulas
template <typename A>
struct Lanes {
  Vectorized<A> v;
  Lanes() = default;
  Lanes(double a) : v(static_cast<A>(a)) {}  // NOLINT: V(0), V(1) in the formulas
  Lanes(const Vectorized<A>& x) : v(x) {}    // NOLINT
};
template <typename A> inline Lanes<A> operator+(const Lanes<A>& a, const Lanes<A>& b) { return a.v + b.v; }
template <typename A> inline Lanes<A> operator-(const Lanes<A>& a, const Lanes<A>& b) { return a.v - b.v; }
template <typename A> inline Lanes<A> operator*(const Lanes<A>& a, const Lanes<A>& b) { return a.v * b.v; }
template <typename A> inline Lanes<A> operator/(const Lanes<A>& a, const Lanes<A>& b) { return a.v / b.v; }
template <typename A> inline Lanes<A> operator<(const Lanes<A>& a, const Lanes<A>& b) { return a.v < b.v; }
template <typename A> inline Lanes<A> operator>(const Lanes<A>& a, const Lanes<A>& b) { return a.v > b.v; }
template <typename A> inline Lanes<A> operator<=(const Lanes<A>& a, const Lanes<A>& b) { return a.v <= b.v; }
template <typename A> inline Lanes<A> operator==(const Lanes<A>& a, const Lanes<A>& b) { return a.v == b.v; }

}  // namespace

namespace elem {
// comparisons give lane masks, select blends; exp is at::vec's exp_u20 (the fast polynomial for
// float, as cpu.cpp; SLEEF for double), log1p SLEEF's
template <typename A>
struct Prim<Lanes<A>> {
  using V = Lanes<A>;
  static inline V select(const V& m, const V& a, const V& b) { return Vectorized<A>::blendv(b.v, a.v, m.v); }
  static inline V neg(const V& a) { return a.v.neg(); }
  static inline V exp_neg_abs(const V& s) { return s.v.abs().neg().exp_u20(); }
  static inline V add_log1p(const V& x, const V& e) { return x.v + e.v.log1p(); }
};
}  // namespace elem

namespace {

template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

template <typename A, typename T>
inline Lanes<A> load(const T* p, int64_t count) {
  using VA = Vectorized<A>;
  if constexpr (std::is_same_v<A, T>) {
    return count == VA::size() ? VA::loadu(p) : VA::loadu(p, count);
  } else {
    alignas(64) A tmp[VA::size()];
    for (int64_t i = 0; i < VA::size(); i++) tmp[i] = i < count ? static_cast<A>(p[i]) : A(0);
    return VA::loadu(tmp);
  }
}

template <typename A, typename T>
inline void store(T* p, const Lanes<A>& x, int64_t count) {
  if constexpr (std::is_same_v<A, T>) {
    x.v.store(p, count);
  } else {
    alignas(64) A tmp[Vectorized<A>::size()];
    x.v.store(tmp);
    for (int64_t i = 0; i < count; i++) p[i] = static_cast<T>(tmp[i]);
  }
}

// the first `count` lanes of v added into s, in lane order
template <typename A>
inline void add_lanes(A& s, const Lanes<A>& v, int64_t count) {
  alignas(64) A tmp[Vectorized<A>::size()];
  v.v.store(tmp);
  for (int64_t i = 0; i < count; i++) s += tmp[i];
}

// K sums over [0, n): f(i, cnt) returns K vectors; fixed chunks, partials added in chunk order
template <typename A, size_t K, typename F>
std::array<A, K> chunked_sums(int64_t n, const F& f) {
  constexpr int64_t L = Vectorized<A>::size();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::array<A, K>> partial(chunks);
  at::parallel_for(0, chunks, 4, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
      std::array<Lanes<A>, K> acc;
      acc.fill(Lanes<A>(0.0));
      int64_t i = begin;
      for (; i + L <= end; i += L) {
        const std::array<Lanes<A>, K> v = f(i, L);
        for (size_t k = 0; k < K; k++) acc[k] = acc[k] + v[k];
      }
      std::array<A, K> s{};
      for (size_t k = 0; k < K; k++) add_lanes<A>(s[k], acc[k], L);
      if (i < end) {
        const std::array<Lanes<A>, K> v = f(i, end - i);
        for (size_t k = 0; k < K; k++) add_lanes<A>(s[k], v[k], end - i);
      }
      partial[c] = s;
    }
  });
  std::array<A, K> total{};
  for (const auto& p : partial)
    for (size_t k = 0; k < K; k++) total[k] += p[k];
  return total;
}

// out[i] = f(i, cnt) over [0, n), in parallel above kChunk elements
template <typename A, typename T, typename F>
void elementwise(T* out, int64_t n, const F& f) {
  constexpr int64_t L = Vectorized<A>::size();
  at::parallel_for(0, n, 2 * kChunk, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i += L) {
      const int64_t cnt = std::min<int64_t>(L, e - i);
      store<A>(out + i, f(i, cnt), cnt);
    }
  });
}

void check_pair(const at::Tensor& real, const at::Tensor& fake) {
  TORCH_CHECK(real.device().is_cpu() && fake.device().is_cpu(), "fastgan relativistic CPU op: CPU tensors only");
  TORCH_CHECK(at::isFloatingType(fake.scalar_type()) && real.scalar_type() == fake.scalar_type(),
              "fastgan relativistic op: real and fake must be floating point of one dtype");
}

// ---------------------------------------------------------------- RaGAN

template <typename T>
std::vector<at::Tensor> ragan_fwd_typed(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                        int64_t reduction) {
  using A = typename Acc<T>::type;
  using V = Lanes<A>;
  const at::Tensor xf = flat(real), yf = flat(fake);
  const int64_t n_r = xf.numel(), n_f = yf.numel();
  const T* x = xf.data_ptr<T>();
  const T* y = yf.data_ptr<T>();
  at::Tensor stats = at::zeros({4}, fake.options().dtype(acc_type(fake.scalar_type())));
  A* st = stats.data_ptr<A>();
  st[0] = chunked_sums<A, 1>(n_r, [&](int64_t i, int64_t c) { return std::array<V, 1>{load<A>(x + i, c)}; })[0];
  st[1] = chunked_sums<A, 1>(n_f, [&](int64_t i, int64_t c) { return std::array<V, 1>{load<A>(y + i, c)}; })[0];
  // the means (a mean over nothing is nan, as torch's)
  const V shift_r(st[1] / static_cast<A>(n_f)), shift_f(st[0] / static_cast<A>(n_r));
  const V t_r(labels[0]), t_f(labels[1]), one(1.0);
  if (reduction == NONE) {
    at::Tensor out_r = at::empty_like(xf), out_f = at::empty_like(yf);
    elementwise<A>(out_r.data_ptr<T>(), n_r,
                   [&](int64_t i, int64_t c) { return elem::bce(load<A>(x + i, c) - shift_r, t_r); });
    elementwise<A>(out_f.data_ptr<T>(), n_f,
                   [&](int64_t i, int64_t c) { return elem::bce(load<A>(y + i, c) - shift_f, t_f); });
    return {out_r.view(real.sizes()), out_f.view(fake.sizes()), stats};
  }
  // the terms and their derivatives, one exp(−|s|) for both
  auto terms = [&](const T* p, const V& shift, const V& t) {
    return [=](int64_t i, int64_t c) {
      V d(0.0);
      V v = elem::term_and_dterm<BCE>(load<A>(p + i, c) - shift, one, t, d);
      return std::array<V, 2>{v, d};
    };
  };
  const std::array<A, 2> r = chunked_sums<A, 2>(n_r, terms(x, shift_r, t_r));
  const std::array<A, 2> f = chunked_sums<A, 2>(n_f, terms(y, shift_f, t_f));
  st[2] = r[1];
  st[3] = f[1];
  A loss = static_cast<A>(mean_weight(reduction, n_r)) * r[0] + static_cast<A>(mean_weight(reduction, n_f)) * f[0];
  if (reduction == MEAN && (n_r == 0 || n_f == 0)) loss = std::numeric_limits<A>::quiet_NaN();
  return {at::scalar_tensor(loss, fake.options()), stats};
}

template <typename T>
std::vector<at::Tensor> ragan_bwd_typed(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                        int64_t reduction, const at::Tensor& stats, at::TensorList grads,
                                        std::array<bool, 2> needs) {
  using A = typename Acc<T>::type;
  using V = Lanes<A>;
  const at::Tensor xf = flat(real), yf = flat(fake);
  const int64_t n_r = xf.numel(), n_f = yf.numel();
  const T* x = xf.data_ptr<T>();
  const T* y = yf.data_ptr<T>();
  const at::Tensor sc = stats.to(acc_type(fake.scalar_type())).contiguous();
  const A* st = sc.data_ptr<A>();
  const V shift_r(st[1] / static_cast<A>(n_f)), shift_f(st[0] / static_cast<A>(n_r));
  const V t_r(labels[0]), t_f(labels[1]);
  std::vector<at::Tensor> out(2);
  if (reduction == NONE) {
    const at::Tensor ur = flat(grads[0].to(fake.scalar_type())), uf = flat(grads[1].to(fake.scalar_type()));
    const T* up_r = ur.data_ptr<T>();
    const T* up_f = uf.data_ptr<T>();
    // Σ g_r·a and Σ g_f·b, then one element-wise pass per needed side
    const A sa = chunked_sums<A, 1>(n_r, [&](int64_t i, int64_t c) {
      return std::array<V, 1>{load<A>(up_r + i, c) * elem::dbce(load<A>(x + i, c) - shift_r, t_r)};
    })[0];
    const A sb = chunked_sums<A, 1>(n_f, [&](int64_t i, int64_t c) {
      return std::array<V, 1>{load<A>(up_f + i, c) * elem::dbce(load<A>(y + i, c) - shift_f, t_f)};
    })[0];
    const V k_r(sb / static_cast<A>(n_r)), k_f(sa / static_cast<A>(n_f));
    if (needs[0]) {
      out[0] = at::empty_like(xf);
      elementwise<A>(out[0].data_ptr<T>(), n_r, [&](int64_t i, int64_t c) {
        return load<A>(up_r + i, c) * elem::dbce(load<A>(x + i, c) - shift_r, t_r) - k_r;
      });
    }
    if (needs[1]) {
      out[1] = at::empty_like(yf);
      elementwise<A>(out[1].data_ptr<T>(), n_f, [&](int64_t i, int64_t c) {
        return load<A>(up_f + i, c) * elem::dbce(load<A>(y + i, c) - shift_f, t_f) - k_f;
      });
    }
  } else {
    // reading a 0-d CPU tensor is a memory load, not a device sync
    const A u = static_cast<A>(grads[0].item<double>());
    const A c_r = u * static_cast<A>(mean_weight(reduction, n_r)), c_f = u * static_cast<A>(mean_weight(reduction, n_f));
    const V cr(c_r), cf(c_f), k_r(c_f * st[3] / static_cast<A>(n_r)), k_f(c_r * st[2] / static_cast<A>(n_f));
    if (needs[0]) {
      out[0] = at::empty_like(xf);
      elementwise<A>(out[0].data_ptr<T>(), n_r, [&](int64_t i, int64_t c) {
        return cr * elem::dbce(load<A>(x + i, c) - shift_r, t_r) - k_r;
      });
    }
    if (needs[1]) {
      out[1] = at::empty_like(yf);
      elementwise<A>(out[1].data_ptr<T>(), n_f, [&](int64_t i, int64_t c) {
        return cf * elem::dbce(load<A>(y + i, c) - shift_f, t_f) - k_f;
      });
    }
  }
  out[0] = needs[0] ? out[0].view(real.sizes()) : at::empty({0}, real.options());
  out[1] = needs[1] ? out[1].view(fake.sizes()) : at::empty({0}, fake.options());
  return out;
}

// ---------------------------------------------------------------- RpGAN

// s = x − y (discriminator) or y − x (generator)
template <typename A, typename T>
inline Lanes<A> paired(const T* x, const T* y, int64_t i, int64_t c, bool gen) {
  const Lanes<A> a = load<A>(x + i, c), b = load<A>(y + i, c);
  return gen ? b - a : a - b;
}

template <typename T>
at::Tensor rpgan_fwd_typed(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction) {
  using A = typename Acc<T>::type;
  using V = Lanes<A>;
  const at::Tensor xf = flat(real), yf = flat(fake);
  const int64_t n = xf.numel();
  const T* x = xf.data_ptr<T>();
  const T* y = yf.data_ptr<T>();
  const V one(1.0);
  if (reduction == NONE) {
    at::Tensor out = at::empty_like(xf);
    elementwise<A>(out.data_ptr<T>(), n, [&](int64_t i, int64_t c) { return elem::bce(paired<A>(x, y, i, c, gen), one); });
    return out.view(real.sizes());
  }
  const A s = chunked_sums<A, 1>(n, [&](int64_t i, int64_t c) {
    return std::array<V, 1>{elem::bce(paired<A>(x, y, i, c, gen), one)};
  })[0];
  const A loss = (reduction == MEAN && n == 0) ? std::numeric_limits<A>::quiet_NaN()
                                               : static_cast<A>(mean_weight(reduction, n)) * s;
  return at::scalar_tensor(loss, fake.options());
}

template <typename T>
std::vector<at::Tensor> rpgan_bwd_typed(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction,
                                        const at::Tensor& up, std::array<bool, 2> needs) {
  using A = typename Acc<T>::type;
  using V = Lanes<A>;
  const at::Tensor xf = flat(real), yf = flat(fake);
  const int64_t n = xf.numel();
  const T* x = xf.data_ptr<T>();
  const T* y = yf.data_ptr<T>();
  const V one(1.0);
  const A sgn = gen ? A(-1) : A(1);
  at::Tensor g_r = needs[0] ? at::empty_like(xf) : at::empty({0}, real.options());
  at::Tensor g_f = needs[1] ? at::empty_like(yf) : at::empty({0}, fake.options());
  T* gr = needs[0] ? g_r.data_ptr<T>() : nullptr;
  T* gf = needs[1] ? g_f.data_ptr<T>() : nullptr;
  at::Tensor uf;
  const T* u = nullptr;
  A c = 0;
  if (reduction == NONE) {
    uf = flat(up.to(fake.scalar_type()));
    u = uf.data_ptr<T>();
  } else {
    c = sgn * static_cast<A>(up.item<double>()) * static_cast<A>(mean_weight(reduction, n));
  }
  const V cv(c), sv(sgn);
  constexpr int64_t L = Vectorized<A>::size();
  // one pass: both gradients from one evaluation of the derivative
  at::parallel_for(0, n, 2 * kChunk, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i += L) {
      const int64_t cnt = std::min<int64_t>(L, e - i);
      const V d = elem::dbce(paired<A>(x, y, i, cnt, gen), one);
      const V g = u ? (sv * load<A>(u + i, cnt)) * d : cv * d;
      if (gr) store<A>(gr + i, g, cnt);
      if (gf) store<A>(gf + i, elem::Prim<V>::neg(g), cnt);
    }
  });
  return {needs[0] ? g_r.view(real.sizes()) : g_r, needs[1] ? g_f.view(fake.sizes()) : g_f};
}

// ---------------------------------------------------------------- op entry points

std::vector<at::Tensor> ragan_fwd_cpu(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                      int64_t reduction) {
  check_pair(real, fake);
  TORCH_CHECK(labels.size() == 2, "fastgan: ragan labels must be {t_r, t_f}");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_ragan_fwd",
                                  [&] { out = ragan_fwd_typed<scalar_t>(real, fake, labels, reduction); });
  return out;
}

std::vector<at::Tensor> ragan_bwd_cpu(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                      int64_t reduction, const at::Tensor& stats, at::TensorList grads,
                                      std::array<bool, 2> needs) {
  check_pair(real, fake);
  TORCH_CHECK(labels.size() == 2 && stats.numel() == 4, "fastgan: ragan_bwd takes ragan_fwd's labels and stats");
  TORCH_CHECK(grads.size() == (reduction == NONE ? 2u : 1u), "fastgan: ragan_bwd: one upstream gradient per output");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_ragan_bwd", [&] {
    out = ragan_bwd_typed<scalar_t>(real, fake, labels, reduction, stats, grads, needs);
  });
  return out;
}

at::Tensor rpgan_fwd_cpu(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction) {
  check_pair(real, fake);
  TORCH_CHECK(real.numel() == fake.numel(), "fastgan: rpgan pairs real and fake element by element");
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_rpgan_fwd",
                                  [&] { out = rpgan_fwd_typed<scalar_t>(real, fake, gen, reduction); });
  return out;
}

std::vector<at::Tensor> rpgan_bwd_cpu(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction,
                                      const at::Tensor& up, std::array<bool, 2> needs) {
  check_pair(real, fake);
  TORCH_CHECK(real.numel() == fake.numel(), "fastgan: rpgan pairs real and fake element by element");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_rpgan_bwd",
                                  [&] { out = rpgan_bwd_typed<scalar_t>(real, fake, gen, reduction, up, needs); });
  return out;
}

// ---------------------------------------------------------------- Meta (shapes and dtypes only)

at::Tensor contiguous_like(const at::Tensor& x) {
  return at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
}

std::vector<at::Tensor> ragan_fwd_meta(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double>,
                                       int64_t reduction) {
  at::Tensor stats = at::empty({4}, fake.options().dtype(acc_type(fake.scalar_type())));
  if (reduction == NONE) return {contiguous_like(real), contiguous_like(fake), stats};
  return {at::empty({}, fake.options()), stats};
}

std::vector<at::Tensor> ragan_bwd_meta(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double>, int64_t,
                                       const at::Tensor&, at::TensorList, std::array<bool, 2> needs) {
  return {needs[0] ? contiguous_like(real) : at::empty({0}, real.options()),
          needs[1] ? contiguous_like(fake) : at::empty({0}, fake.options())};
}

at::Tensor rpgan_fwd_meta(const at::Tensor& real, const at::Tensor& fake, bool, int64_t reduction) {
  return reduction == NONE ? contiguous_like(real) : at::empty({}, fake.options());
}

std::vector<at::Tensor> rpgan_bwd_meta(const at::Tensor& real, const at::Tensor& fake, bool, int64_t,
                                       const at::Tensor&, std::array<bool, 2> needs) {
  return {needs[0] ? contiguous_like(real) : at::empty({0}, real.options()),
          needs[1] ? contiguous_like(fake) : at::empty({0}, fake.options())};
}

}  // namespace

// ---------------------------------------------------------------- autograd (C++, as ops.cpp's pair_loss)
// First derivatives from ragan_bwd / rpgan_bwd; with create_graph, ATen formulas: with
// c_r = u_r·dbce(x − ȳ, t_r), c_f = u_f·dbce(y − x̄, t_f): ∂x = c_r − Σc_f / n_r, ∂y = c_f −
// Σc_r / n_f; RpGAN: σ of the softplus argument.  (Per-call cost: autograd-cost-cpu.md.)

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<at::Tensor> call_ragan_fwd(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                       int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::ragan_fwd", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, at::ArrayRef<double>,
                                                      int64_t)>();
  return op.call(real, fake, labels, reduction);
}

std::vector<at::Tensor> call_ragan_bwd(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                       int64_t reduction, const at::Tensor& stats, at::TensorList grads,
                                       std::array<bool, 2> needs) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::ragan_bwd", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, at::ArrayRef<double>,
                                                      int64_t, const at::Tensor&, at::TensorList,
                                                      std::array<bool, 2>)>();
  return op.call(real, fake, labels, reduction, stats, grads, needs);
}

at::Tensor call_rpgan_fwd(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::rpgan_fwd", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool, int64_t)>();
  return op.call(real, fake, gen, reduction);
}

std::vector<at::Tensor> call_rpgan_bwd(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction,
                                       const at::Tensor& up, std::array<bool, 2> needs) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::rpgan_bwd", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, bool, int64_t,
                                                      const at::Tensor&, std::array<bool, 2>)>();
  return op.call(real, fake, gen, reduction, up, needs);
}

// the upstream gradient of a side times its reduction weight, in the accumulation dtype
at::Tensor side_up(const at::Tensor& up, const at::Tensor& x, int64_t reduction) {
  const at::Tensor u = up.to(acc_type(x.scalar_type()));
  return reduction == NONE ? u : u * mean_scalar(reduction, x.sym_numel());
}

struct RaganFn : public torch::autograd::Function<RaganFn> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake,
                               std::vector<double> labels, int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto out = call_ragan_fwd(real, fake, labels, reduction);
    ctx->saved_data["labels"] = labels;
    ctx->saved_data["reduction"] = reduction;
    ctx->save_for_backward({real, fake, out.back()});
    out.pop_back();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &real = saved[0], &fake = saved[1];
    const std::vector<double> t = ctx->saved_data["labels"].toDoubleVector();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    const std::array<bool, 2> needs = {ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    at::Tensor g_r, g_f;
    if (at::GradMode::is_enabled()) {  // create_graph: differentiable formulas
      const auto acc = acc_type(fake.scalar_type());
      const at::Tensor x = real.to(acc), y = fake.to(acc);
      const at::Tensor c_r = side_up(grads[0], real, reduction) * dbce_aten(x - y.mean(), t[0]);
      const at::Tensor c_f = side_up(reduction == NONE ? grads[1] : grads[0], fake, reduction) *
                             dbce_aten(y - x.mean(), t[1]);
      g_r = (c_r - c_f.sum() * mean_scalar(MEAN, real.sym_numel())).to(real.scalar_type());
      g_f = (c_f - c_r.sum() * mean_scalar(MEAN, fake.sym_numel())).to(fake.scalar_type());
    } else {
      auto out = call_ragan_bwd(real, fake, t, reduction, saved[2], grads, needs);
      g_r = out[0];
      g_f = out[1];
    }
    return {needs[0] ? g_r : at::Tensor(), needs[1] ? g_f : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct RpganFn : public torch::autograd::Function<RpganFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& real, const at::Tensor& fake, bool gen,
                            int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["gen"] = gen;
    ctx->saved_data["reduction"] = reduction;
    ctx->save_for_backward({real, fake});
    return call_rpgan_fwd(real, fake, gen, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &real = saved[0], &fake = saved[1];
    const bool gen = ctx->saved_data["gen"].toBool();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    const std::array<bool, 2> needs = {ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    at::Tensor g_r, g_f;
    if (at::GradMode::is_enabled()) {  // the term is softplus(z), z = x − y (G) or y − x (D)
      const auto acc = acc_type(fake.scalar_type());
      const at::Tensor x = real.to(acc), y = fake.to(acc);
      const at::Tensor d = side_up(grads[0], real, reduction) * at::sigmoid(gen ? x - y : y - x);
      g_r = (gen ? d : -d).to(real.scalar_type());
      g_f = (gen ? -d : d).to(fake.scalar_type());
    } else {
      auto out = call_rpgan_bwd(real, fake, gen, reduction, grads[0], needs);
      g_r = out[0];
      g_f = out[1];
    }
    return {needs[0] ? g_r : at::Tensor(), needs[1] ? g_f : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::vector<at::Tensor> ragan_loss_autograd(const at::Tensor& real, const at::Tensor& fake,
                                            at::ArrayRef<double> labels, int64_t reduction) {
  return RaganFn::apply(real, fake, labels.vec(), reduction);
}

at::Tensor rpgan_loss_autograd(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction) {
  return RpganFn::apply(real, fake, gen, reduction);
}

// forward only (inference mode, tensors without autograd keys): the loss without the stats
std::vector<at::Tensor> ragan_loss_plain(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> labels,
                                         int64_t reduction) {
  auto out = call_ragan_fwd(real, fake, labels, reduction);
  out.pop_back();
  return out;
}

}  // namespace

// pybind11 entry points (ops.cpp's PYBIND11_MODULE): the autograd ops through the dispatcher
std::vector<at::Tensor> py_ragan_loss(const at::Tensor& real, const at::Tensor& fake,
                                      const std::vector<double>& labels, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::ragan_loss", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, const at::Tensor&, at::ArrayRef<double>,
                                                      int64_t)>();
  return op.call(real, fake, labels, reduction);
}

at::Tensor py_rpgan_loss(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::rpgan_loss", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool, int64_t)>();
  return op.call(real, fake, gen, reduction);
}

TORCH_LIBRARY_FRAGMENT(fastgan_native, m) {
  m.def("ragan_fwd(Tensor real, Tensor fake, float[] labels, int reduction) -> Tensor[]");
  m.def("ragan_bwd(Tensor real, Tensor fake, float[] labels, int reduction, Tensor stats, Tensor[] grads, "
        "bool[2] needs) -> Tensor[]");
  m.def("rpgan_fwd(Tensor real, Tensor fake, bool gen, int reduction) -> Tensor");
  m.def("rpgan_bwd(Tensor real, Tensor fake, bool gen, int reduction, Tensor up, bool[2] needs) -> Tensor[]");
  // the autograd ops: [loss] or, with "none", [real terms, fake terms]; the paired terms
  m.def("ragan_loss(Tensor real, Tensor fake, float[] labels, int reduction) -> Tensor[]");
  m.def("rpgan_loss(Tensor real, Tensor fake, bool gen, int reduction) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastgan_native, Autograd, m) {
  m.impl("ragan_loss", &ragan_loss_autograd);
  m.impl("rpgan_loss", &rpgan_loss_autograd);
}

TORCH_LIBRARY_IMPL(fastgan_native, CompositeExplicitAutograd, m) {
  m.impl("ragan_loss", &ragan_loss_plain);
  m.impl("rpgan_loss", &call_rpgan_fwd);  // the forward alone
}

TORCH_LIBRARY_IMPL(fastgan_native, CPU, m) {
  m.impl("ragan_fwd", &ragan_fwd_cpu);
  m.impl("ragan_bwd", &ragan_bwd_cpu);
  m.impl("rpgan_fwd", &rpgan_fwd_cpu);
  m.impl("rpgan_bwd", &rpgan_bwd_cpu);
}

TORCH_LIBRARY_IMPL(fastgan_native, Meta, m) {
  m.impl("ragan_fwd", &ragan_fwd_meta);
  m.impl("ragan_bwd", &ragan_bwd_meta);
  m.impl("rpgan_fwd", &rpgan_fwd_meta);
  m.impl("rpgan_bwd", &rpgan_bwd_meta);
}

}  // namespace fastgan

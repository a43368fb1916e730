// fastgan native CPU kernels of the divergences: gaussian_kl, kl_div_logits, js_div_logits.
//
// The math (kernels/divergence.py's docstring derives it; fastgan/reference.py is the spec):
//   gaussian_kl   per sample t_b = Σ_j ½(mu² + expm1(lv) − lv), reduced over the batch;
//                 ∂mu = mu·u_b·w, ∂lv = ½ expm1(lv)·u_b·w
//   per row of logits (the distribution dim moved last, contiguous; a copy when it is not):
//                 m = max x, e = exp(x − m), s = Σ e, lp = (x − m) − log s, P = e / s  (so for q)
//   KL            Σ P (lp − lq) (terms with P = 0 are 0); ∂x = u·P((lp − lq) − KL), ∂y = u·(Q − P)
//   JS            ½A + ½B, A = Σ P (lp − lm), B = Σ Q (lq − lm), lm = log(½(P + Q));
//                 ∂x = ½u·P((lp − lm) − A), ∂y = ½u·Q((lq − lm) − B)  (0 where P, Q = 0)
// The forward returns, besides the loss, the per-row statistics (m_p, log s_p, m_q, log s_q)
// and divergences (KL, 0) or (A, B), in the accumulation dtype; the backward reads them
// instead of reducing each row again: one pass, one read of each input, one write of each
// gradient asked for.
//
// Rows (samples) are processed in parallel (at::parallel_for), each row's sums in a fixed
// order, and the batch reduction sequentially in row order: results do not depend on the
// number of threads.  Half types are converted to float32 once on entry (a copy) and the
// results back; float64 computes in float64.  A row is never split across threads (a few
// very long rows use few threads).
//
// Registered here (TORCH_LIBRARY_FRAGMENT, CPU and Meta kernels), so ops.cpp is untouched:
//   gaussian_kl_fwd(mu, logvar, reduction) -> loss
//   gaussian_kl_bwd(mu, logvar, reduction, up, need_mu, need_logvar) -> [∂mu, ∂logvar]
//   divergence_fwd(p, q, dim, js, reduction) -> [loss, stat (R, 4), rowdiv (R, 2)]
//   divergence_bwd(p, q, dim, js, reduction, stat, rowdiv, up, need_p, need_q) -> [∂p, ∂q]
// A gradient not asked for is an empty tensor.  Autograd: fastgan/backends/native/divergence.py (fused.Fused).

#if defined(__AVX2__) && defined(__FMA__) && !defined(CPU_CAPABILITY_AVX2) && !defined(CPU_CAPABILITY_DEFAULT)
#define CPU_CAPABILITY_AVX2
#endif

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "fastgan.h"

namespace fastgan {
namespace {

using at::vec::Vectorized;

template <typename A>
constexpr A kNegInf = -std::numeric_limits<A>::infinity();

// exp(z) for z <= 0 (the logits minus their row's maximum): float uses at::vec's fast
// polynomial exp_u20 (0 below log(FLT_MIN), where a P of 0 makes its term 0), with nan
// kept (exp_u20 clamps it); double SLEEF's exp
inline Vectorized<float> vexp(const Vectorized<float>& z) {
  return Vectorized<float>::blendv(z.exp_u20(), z, z != z);
}
inline Vectorized<double> vexp(const Vectorized<double>& z) { return z.exp(); }

// expm1: float from at::vec's fast exp_u20 (SLEEF's expm1 costs about 7x torch's exp here):
// for |x| < 1/4 its Taylor polynomial to x^8 (truncation below 2e-9 relative), else
// exp(x) − 1 (at most a few ulp: |exp(x) − 1| >= 0.22 there); +inf above log(FLT_MAX) (88.7228...), where
// exp_u20 clamps, and nan kept.  double: SLEEF's expm1.
inline Vectorized<float> vexpm1(const Vectorized<float>& x) {
  using V = Vectorized<float>;
  V p(1.0f / 40320);
  p = at::vec::fmadd(p, x, V(1.0f / 5040));
  p = at::vec::fmadd(p, x, V(1.0f / 720));
  p = at::vec::fmadd(p, x, V(1.0f / 120));
  p = at::vec::fmadd(p, x, V(1.0f / 24));
  p = at::vec::fmadd(p, x, V(1.0f / 6));
  p = at::vec::fmadd(p, x, V(0.5f));
  p = at::vec::fmadd(p, x, V(1));
  V r = V::blendv(x.exp_u20() - V(1), p * x, x.abs() < V(0.25f));
  r = V::blendv(r, V(std::numeric_limits<float>::infinity()), x > V(88.72283935546875f));
  return V::blendv(r, x, x != x);
}
inline Vectorized<double> vexpm1(const Vectorized<double>& x) { return x.expm1(); }

// a where mask (all bits set) is clear, else 0
template <typename A>
inline Vectorized<A> zero_where(const Vectorized<A>& mask, const Vectorized<A>& a) {
  return Vectorized<A>::blendv(a, Vectorized<A>(0), mask);
}

template <typename A>
inline A lane_sum(const Vectorized<A>& v, int64_t count = Vectorized<A>::size()) {
  alignas(64) A t[Vectorized<A>::size()];
  v.store(t);
  A s = 0;
  for (int64_t i = 0; i < count; i++) s += t[i];
  return s;
}

// max that keeps nan, as torch's max
template <typename A>
inline A max_nan(A a, A b) {
  return (b > a || b != b) ? b : a;
}

// Σ_i f(i, count) over [0, n) in vector steps, in a fixed order (two accumulators, then the tail)
template <typename A, typename F>
inline A row_sum(int64_t n, const F& f) {
  using V = Vectorized<A>;
  V a0(0), a1(0);
  int64_t i = 0;
  for (; i + 2 * V::size() <= n; i += 2 * V::size()) {
    a0 += f(i, V::size());
    a1 += f(i + V::size(), V::size());
  }
  A tail = 0;
  for (; i < n; i += V::size()) {
    const int64_t cnt = std::min<int64_t>(V::size(), n - i);
    tail += lane_sum<A>(f(i, cnt), cnt);
  }
  return lane_sum<A>(a0 + a1) + tail;
}

// the same for two sums at once: f(i, count, a, b) adds its terms to the vectors a and b
template <typename A, typename F>
inline std::pair<A, A> row_sum2(int64_t n, const F& f) {
  using V = Vectorized<A>;
  V a(0), b(0);
  int64_t i = 0;
  for (; i + V::size() <= n; i += V::size()) f(i, V::size(), a, b);
  A ta = 0, tb = 0;
  if (i < n) {
    const int64_t cnt = n - i;
    V va(0), vb(0);
    f(i, cnt, va, vb);
    ta = lane_sum<A>(va, cnt);
    tb = lane_sum<A>(vb, cnt);
  }
  return {lane_sum<A>(a) + ta, lane_sum<A>(b) + tb};
}

template <typename A>
inline Vectorized<A> ld(const A* p, int64_t cnt) {
  return cnt == Vectorized<A>::size() ? Vectorized<A>::loadu(p) : Vectorized<A>::loadu(p, cnt);
}

template <typename A>
A row_max(const A* x, int64_t D) {
  using V = Vectorized<A>;
  V m(kNegInf<A>);
  int64_t i = 0;
  for (; i + V::size() <= D; i += V::size()) m = at::vec::maximum(m, V::loadu(x + i));
  alignas(64) A t[V::size()];
  m.store(t);
  A r = kNegInf<A>;
  for (int64_t l = 0; l < V::size(); l++) r = max_nan(r, t[l]);
  for (; i < D; i++) r = max_nan(r, x[i]);
  return r;
}

// e[i] = exp(x[i] − m); returns Σ e
template <typename A>
A row_sumexp(const A* x, int64_t D, A m, A* e) {
  using V = Vectorized<A>;
  const V mv(m);
  return row_sum<A>(D, [&](int64_t i, int64_t cnt) {
    const V v = vexp(ld(x + i, cnt) - mv);
    v.store(e + i, cnt);
    return v;
  });
}

// (acc dtype, contiguous, dim moved last) view of a logits tensor and its (R, D)
struct Rows {
  at::Tensor t;
  int64_t R, D;
};

Rows rows_of(const at::Tensor& x, int64_t dim) {
  at::Tensor t = x.movedim(dim, -1).to(acc_type(x.scalar_type())).contiguous();
  const int64_t D = t.size(-1);
  int64_t R = 1;
  for (int64_t k = 0; k + 1 < t.dim(); k++) R *= t.size(k);
  return {t, R, D};
}

void check_pair(const at::Tensor& a, const at::Tensor& b, const char* what) {
  TORCH_CHECK(a.device().is_cpu() && b.device().is_cpu(), "fastgan native CPU op ", what, ": CPU tensors only");
  TORCH_CHECK(at::isFloatingType(a.scalar_type()) && a.scalar_type() == b.scalar_type(),
              "fastgan native op ", what, ": two floating tensors of one dtype");
  TORCH_CHECK(a.sizes() == b.sizes(), "fastgan native op ", what, ": the two tensors differ in shape");
}

at::Tensor reduced(double value, int64_t reduction, int64_t n, const at::Tensor& like) {
  const double r = (reduction == MEAN && n == 0) ? std::numeric_limits<double>::quiet_NaN()
                                                 : value * mean_weight(reduction, n);
  return at::scalar_tensor(r, like.options());
}

// the upstream gradient per row (reduction "none") or the scalar times the mean weight
template <typename A>
struct Upstream {
  at::Tensor per_row;
  const A* u = nullptr;
  A c = 0;
  Upstream(const at::Tensor& up, int64_t reduction, int64_t n) {
    if (reduction == NONE) {
      per_row = up.to(c10::CppTypeToScalarType<A>::value).contiguous();
      u = per_row.data_ptr<A>();
    } else {
      c = static_cast<A>(up.item<double>() * mean_weight(reduction, n));
    }
  }
  A operator[](int64_t r) const { return u ? u[r] : c; }
};

// ------------------------------------------------------------------ gaussian_kl

at::Tensor gaussian_kl_fwd_cpu(const at::Tensor& mu, const at::Tensor& logvar, int64_t reduction) {
  check_pair(mu, logvar, "gaussian_kl_fwd");
  TORCH_CHECK(mu.dim() >= 1, "fastgan: gaussian_kl needs a batch dimension");
  const auto acc = acc_type(mu.scalar_type());
  const at::Tensor m = mu.to(acc).contiguous(), l = logvar.to(acc).contiguous();
  const int64_t B = mu.size(0);
  const int64_t D = B ? m.numel() / B : 0;
  at::Tensor rows = at::empty({B}, m.options());
  AT_DISPATCH_FLOATING_TYPES(acc, "fastgan_gaussian_kl_fwd", [&] {
    using A = scalar_t;
    using V = Vectorized<A>;
    const A* mp = m.data_ptr<A>();
    const A* lp = l.data_ptr<A>();
    A* o = rows.data_ptr<A>();
    const V half(0.5);
    at::parallel_for(0, B, std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const A* x = mp + r * D;
        const A* v = lp + r * D;
        o[r] = row_sum<A>(D, [&](int64_t i, int64_t cnt) {
          const V a = ld(x + i, cnt), b = ld(v + i, cnt);
          return half * (a * a + vexpm1(b) - b);
        });
      }
    });
  });
  if (reduction == NONE) return rows.to(mu.scalar_type());
  double total = 0;
  AT_DISPATCH_FLOATING_TYPES(acc, "fastgan_gaussian_kl_sum", [&] {
    scalar_t s = 0;
    const scalar_t* o = rows.data_ptr<scalar_t>();
    for (int64_t r = 0; r < B; r++) s += o[r];
    total = static_cast<double>(s);
  });
  return reduced(total, reduction, B, mu);
}

std::vector<at::Tensor> gaussian_kl_bwd_cpu(const at::Tensor& mu, const at::Tensor& logvar, int64_t reduction,
                                            const at::Tensor& up, bool need_mu, bool need_logvar) {
  check_pair(mu, logvar, "gaussian_kl_bwd");
  const auto acc = acc_type(mu.scalar_type());
  const at::Tensor m = mu.to(acc).contiguous(), l = logvar.to(acc).contiguous();
  const int64_t B = mu.size(0);
  const int64_t D = B ? m.numel() / B : 0;
  at::Tensor gm = need_mu ? at::empty_like(m) : at::Tensor();
  at::Tensor gl = need_logvar ? at::empty_like(l) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(acc, "fastgan_gaussian_kl_bwd", [&] {
    using A = scalar_t;
    using V = Vectorized<A>;
    const Upstream<A> u(up, reduction, B);
    const A* mp = m.data_ptr<A>();
    const A* lp = l.data_ptr<A>();
    A* gmp = need_mu ? gm.data_ptr<A>() : nullptr;
    A* glp = need_logvar ? gl.data_ptr<A>() : nullptr;
    at::parallel_for(0, B, std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const V c(u[r]), ch(A(0.5) * u[r]);
        for (int64_t i = r * D; i < (r + 1) * D; i += V::size()) {
          const int64_t cnt = std::min<int64_t>(V::size(), (r + 1) * D - i);
          if (gmp) (c * ld(mp + i, cnt)).store(gmp + i, cnt);
          if (glp) (ch * vexpm1(ld(lp + i, cnt))).store(glp + i, cnt);
        }
      }
    });
  });
  auto out = [&](const at::Tensor& g, bool need, const at::Tensor& like) {
    return need ? g.to(like.scalar_type()).view(like.sizes()) : at::empty({0}, like.options());
  };
  return {out(gm, need_mu, mu), out(gl, need_logvar, logvar)};
}

// ------------------------------------------------------------------ kl / js over rows

std::vector<at::Tensor> divergence_fwd_cpu(const at::Tensor& p, const at::Tensor& q, int64_t dim, bool js,
                                           int64_t reduction) {
  check_pair(p, q, "divergence_fwd");
  const Rows X = rows_of(p, dim), Y = rows_of(q, dim);
  const int64_t R = X.R, D = X.D;
  at::Tensor stat = at::empty({R, 4}, X.t.options());
  at::Tensor rowdiv = at::empty({R, 2}, X.t.options());
  AT_DISPATCH_FLOATING_TYPES(X.t.scalar_type(), "fastgan_divergence_fwd", [&] {
    using A = scalar_t;
    using V = Vectorized<A>;
    const A* xp = X.t.data_ptr<A>();
    const A* yp = Y.t.data_ptr<A>();
    A* st = stat.data_ptr<A>();
    A* dv = rowdiv.data_ptr<A>();
    at::parallel_for(0, R, std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<A> ebuf(2 * D);
      A* ep = ebuf.data();
      A* eq = ep + D;
      for (int64_t r = r0; r < r1; r++) {
        const A* x = xp + r * D;
        const A* y = yp + r * D;
        const A mp = row_max(x, D), mq = row_max(y, D);
        const A sp = row_sumexp(x, D, mp, ep), sq = row_sumexp(y, D, mq, eq);
        const A lsp = std::log(sp), lsq = std::log(sq);
        const V mpv(mp), mqv(mq), lspv(lsp), lsqv(lsq), zero(0);
        A a, b = 0;
        if (!js) {
          a = row_sum<A>(D, [&](int64_t i, int64_t cnt) {
            const V e = ld(ep + i, cnt);
            const V d = ((ld(x + i, cnt) - mpv) - lspv) - ((ld(y + i, cnt) - mqv) - lsqv);
            return zero_where(e == zero, e * d);
          });
          if (D > 0) a /= sp;  // a row with no elements: 0, not 0 / 0
        } else {
          const V isp(A(1) / sp), isq(A(1) / sq), half(0.5);
          const auto ab = row_sum2<A>(D, [&](int64_t i, int64_t cnt, V& va, V& vb) {
            const V P = ld(ep + i, cnt) * isp, Q = ld(eq + i, cnt) * isq;
            const V lm = (half * (P + Q)).log();
            va += zero_where(P == zero, P * (((ld(x + i, cnt) - mpv) - lspv) - lm));
            vb += zero_where(Q == zero, Q * (((ld(y + i, cnt) - mqv) - lsqv) - lm));
          });
          a = ab.first;
          b = ab.second;
        }
        st[4 * r] = mp;
        st[4 * r + 1] = lsp;
        st[4 * r + 2] = mq;
        st[4 * r + 3] = lsq;
        dv[2 * r] = a;
        dv[2 * r + 1] = b;
      }
    });
  });
  at::Tensor terms = js ? (rowdiv.select(1, 0) + rowdiv.select(1, 1)) * 0.5 : rowdiv.select(1, 0);
  at::Tensor out;
  if (reduction == NONE) {
    out = terms.to(p.scalar_type()).view(X.t.sizes().slice(0, X.t.dim() - 1));
  } else {
    double total = 0;
    AT_DISPATCH_FLOATING_TYPES(X.t.scalar_type(), "fastgan_divergence_sum", [&] {
      const at::Tensor tc = terms.contiguous();
      const scalar_t* t = tc.data_ptr<scalar_t>();
      scalar_t s = 0;
      for (int64_t r = 0; r < R; r++) s += t[r];
      total = static_cast<double>(s);
    });
    out = reduced(total, reduction, R, p);
  }
  return {out, stat, rowdiv};
}

std::vector<at::Tensor> divergence_bwd_cpu(const at::Tensor& p, const at::Tensor& q, int64_t dim, bool js,
                                           int64_t reduction, const at::Tensor& stat, const at::Tensor& rowdiv,
                                           const at::Tensor& up, bool need_p, bool need_q) {
  check_pair(p, q, "divergence_bwd");
  const Rows X = rows_of(p, dim), Y = rows_of(q, dim);
  const int64_t R = X.R, D = X.D;
  TORCH_CHECK(stat.scalar_type() == X.t.scalar_type() && stat.numel() == 4 * R && rowdiv.numel() == 2 * R,
              "fastgan: divergence_bwd takes divergence_fwd's row statistics");
  at::Tensor gx = need_p ? at::empty_like(X.t) : at::Tensor();
  at::Tensor gy = need_q ? at::empty_like(Y.t) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(X.t.scalar_type(), "fastgan_divergence_bwd", [&] {
    using A = scalar_t;
    using V = Vectorized<A>;
    const Upstream<A> u(up, reduction, R);
    const at::Tensor stc = stat.contiguous(), dvc = rowdiv.contiguous();
    const A* st = stc.data_ptr<A>();
    const A* dv = dvc.data_ptr<A>();
    const A* xp = X.t.data_ptr<A>();
    const A* yp = Y.t.data_ptr<A>();
    A* gxp = need_p ? gx.data_ptr<A>() : nullptr;
    A* gyp = need_q ? gy.data_ptr<A>() : nullptr;
    at::parallel_for(0, R, std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1)), [&](int64_t r0, int64_t r1) {
      const V zero(0), half(0.5);
      for (int64_t r = r0; r < r1; r++) {
        const V mp(st[4 * r]), lsp(st[4 * r + 1]), mq(st[4 * r + 2]), lsq(st[4 * r + 3]);
        const V a(dv[2 * r]), b(dv[2 * r + 1]);
        const V c(js ? A(0.5) * u[r] : u[r]);
        for (int64_t i = r * D; i < (r + 1) * D; i += V::size()) {
          const int64_t cnt = std::min<int64_t>(V::size(), (r + 1) * D - i);
          const V lp = (ld(xp + i, cnt) - mp) - lsp, lq = (ld(yp + i, cnt) - mq) - lsq;
          const V P = vexp(lp), Q = vexp(lq);
          V g1, g2;
          if (js) {
            const V lm = (half * (P + Q)).log();
            g1 = zero_where(P == zero, P * ((lp - lm) - a));
            g2 = zero_where(Q == zero, Q * ((lq - lm) - b));
          } else {
            g1 = zero_where(P == zero, P * ((lp - lq) - a));
            g2 = Q - P;
          }
          if (gxp) (c * g1).store(gxp + i, cnt);
          if (gyp) (c * g2).store(gyp + i, cnt);
        }
      }
    });
  });
  auto out = [&](const at::Tensor& g, bool need, const at::Tensor& like) {
    return need ? g.to(like.scalar_type()).movedim(-1, dim) : at::empty({0}, like.options());
  };
  return {out(gx, need_p, p), out(gy, need_q, q)};
}

// ------------------------------------------------------------------ Meta kernels (shapes and dtypes)

at::Tensor gaussian_kl_fwd_meta(const at::Tensor& mu, const at::Tensor& logvar, int64_t reduction) {
  if (reduction == NONE) return at::empty_symint({mu.sym_size(0)}, mu.options());
  return at::empty({}, mu.options());
}

std::vector<at::Tensor> gaussian_kl_bwd_meta(const at::Tensor& mu, const at::Tensor& logvar, int64_t reduction,
                                             const at::Tensor& up, bool need_mu, bool need_logvar) {
  return {need_mu ? at::empty_symint(mu.sym_sizes(), mu.options()) : at::empty({0}, mu.options()),
          need_logvar ? at::empty_symint(logvar.sym_sizes(), logvar.options()) : at::empty({0}, logvar.options())};
}

std::vector<at::Tensor> divergence_fwd_meta(const at::Tensor& p, const at::Tensor& q, int64_t dim, bool js,
                                            int64_t reduction) {
  const at::Tensor moved = p.movedim(dim, -1);
  std::vector<c10::SymInt> lead(moved.sym_sizes().begin(), moved.sym_sizes().end() - 1);
  c10::SymInt R = 1;
  for (const auto& s : lead) R = R * s;
  const auto acc = p.options().dtype(acc_type(p.scalar_type()));
  at::Tensor out = reduction == NONE ? at::empty_symint(lead, p.options()) : at::empty({}, p.options());
  return {out, at::empty_symint({R, 4}, acc), at::empty_symint({R, 2}, acc)};
}

std::vector<at::Tensor> divergence_bwd_meta(const at::Tensor& p, const at::Tensor& q, int64_t dim, bool js,
                                            int64_t reduction, const at::Tensor& stat, const at::Tensor& rowdiv,
                                            const at::Tensor& up, bool need_p, bool need_q) {
  auto like = [&](const at::Tensor& x, bool need) {
    return need ? at::empty_symint(x.movedim(dim, -1).sym_sizes(), x.options()).movedim(-1, dim)
                : at::empty({0}, x.options());
  };
  return {like(p, need_p), like(q, need_q)};
}

}  // namespace
}  // namespace fastgan

TORCH_LIBRARY_FRAGMENT(fastgan_native, m) {
  m.def("gaussian_kl_fwd(Tensor mu, Tensor logvar, int reduction) -> Tensor");
  m.def("gaussian_kl_bwd(Tensor mu, Tensor logvar, int reduction, Tensor up, bool need_mu, bool need_logvar) "
        "-> Tensor[]");
  m.def("divergence_fwd(Tensor p_logits, Tensor q_logits, int dim, bool js, int reduction) -> Tensor[]");
  m.def("divergence_bwd(Tensor p_logits, Tensor q_logits, int dim, bool js, int reduction, Tensor stat, "
        "Tensor rowdiv, Tensor up, bool need_p, bool need_q) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(fastgan_native, CPU, m) {
  m.impl("gaussian_kl_fwd", &fastgan::gaussian_kl_fwd_cpu);
  m.impl("gaussian_kl_bwd", &fastgan::gaussian_kl_bwd_cpu);
  m.impl("divergence_fwd", &fastgan::divergence_fwd_cpu);
  m.impl("divergence_bwd", &fastgan::divergence_bwd_cpu);
}

TORCH_LIBRARY_IMPL(fastgan_native, Meta, m) {
  m.impl("gaussian_kl_fwd", &fastgan::gaussian_kl_fwd_meta);
  m.impl("gaussian_kl_bwd", &fastgan::gaussian_kl_bwd_meta);
  m.impl("divergence_fwd", &fastgan::divergence_fwd_meta);
  m.impl("divergence_bwd", &fastgan::divergence_bwd_meta);
}

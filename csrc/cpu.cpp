// fastgan native CPU kernels: one pass over the data, inner loops vectorised with
// ATen's at::vec::Vectorized (SLEEF exp / log1p), at::parallel_for over fixed-size
// chunks so that small inputs stay single-threaded and the reduction order (and so
// the result, bit for bit) does not depend on the number of threads.

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

// The reduced forward.  With `deriv` (one acc_t buffer per side, or nullptr) it also
// writes each element's d term / d logit, so the backward is a scale (pair_scale_cpu).
template <typename scalar_t, int KIND>
std::vector<at::Tensor> pair_fwd_typed(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> p,
                                       int64_t reduction,
                                       typename Acc<scalar_t>::type* const* deriv = nullptr) {
  using acc_t = typename Acc<scalar_t>::type;
  using V = Vectorized<acc_t>;
  const bool has_real = real.defined();
  std::vector<at::Tensor> out;
  struct Side { const at::Tensor* x; double sgn, t; acc_t* d; };
  std::vector<Side> sides;
  if (has_real) sides.push_back({&real, p[0], p[1], deriv ? deriv[0] : nullptr});
  sides.push_back({&fake, p[2], p[3], deriv ? deriv[1] : nullptr});
  if (reduction == NONE) {
    for (auto& sd : sides) {
      at::Tensor xf = flat(*sd.x);
      at::Tensor o = at::empty_like(xf);
      const PairSide<scalar_t, KIND> side(xf.data_ptr<scalar_t>(), sd.sgn, sd.t);
      elementwise<acc_t>(o.data_ptr<scalar_t>(), xf.numel(),
                         [&](int64_t i, int64_t cnt) { return side.value(i, cnt); });
      out.push_back(o.view(sd.x->sizes()));
    }
    return out;
  }
  double total = 0;
  bool empty_mean = false;
  for (auto& sd : sides) {
    at::Tensor xf = flat(*sd.x);
    const int64_t n = xf.numel();
    const PairSide<scalar_t, KIND> side(xf.data_ptr<scalar_t>(), sd.sgn, sd.t);
    acc_t s;
    if (sd.d != nullptr) {
      acc_t* d = sd.d;
      s = chunked_sum<acc_t>(n, [&](int64_t i, int64_t cnt) {
        V dv;
        V v = term_and_dterm<KIND>(load<acc_t>(side.x + i, cnt), side.sgn, side.t, dv);
        dv.store(d + i, cnt);
        return v;
      });
    } else {
      s = chunked_sum<acc_t>(n, [&](int64_t i, int64_t cnt) { return side.value(i, cnt); });
    }
    add_side<acc_t>(total, empty_mean, s, n, reduction);
  }
  const acc_t result = side_total<acc_t>(total, empty_mean);
  out.push_back(at::scalar_tensor(result, fake.options().dtype(fake.scalar_type())));
  return out;
}

template <typename scalar_t, int KIND>
std::vector<at::Tensor> pair_bwd_typed(const at::Tensor& real, const at::Tensor& fake, at::ArrayRef<double> p,
                                       int64_t reduction, at::TensorList grads) {
  using acc_t = typename Acc<scalar_t>::type;
  using V = Vectorized<acc_t>;
  const bool has_real = real.defined();
  std::vector<at::Tensor> out;
  out.reserve(2);
  if (!has_real) out.push_back(at::empty({0}, fake.options()));  // no real side: an empty placeholder
  for (int side = has_real ? 0 : 1; side < 2; side++) {
    const at::Tensor& xin = side == 0 ? real : fake;
    const at::Tensor xc = xin.contiguous();  // no copy when already contiguous
    const int64_t n = xc.numel();
    at::Tensor g = at::empty(xin.sizes(), xin.options().memory_format(at::MemoryFormat::Contiguous));
    const PairSide<scalar_t, KIND> sd(xc.data_ptr<scalar_t>(), p[2 * side], p[2 * side + 1]);
    if (reduction == NONE) {
      const at::Tensor upc = grads[has_real ? side : 0].to(xin.scalar_type()).contiguous();
      const scalar_t* u = upc.data_ptr<scalar_t>();
      elementwise<acc_t>(g.data_ptr<scalar_t>(), n,
                         [&](int64_t i, int64_t cnt) { return sd.grad(load<acc_t>(u + i, cnt), i, cnt); });
    } else {
      // reading a 0-d CPU tensor is a memory load, not a device sync
      const V c(pair_grad_scale<acc_t>(grads[0].item<double>(), reduction, n));
      elementwise<acc_t>(g.data_ptr<scalar_t>(), n, [&](int64_t i, int64_t cnt) { return sd.grad(c, i, cnt); });
    }
    out.push_back(g);
  }
  return out;
}

// x in the input's dtype; target, weight and pos_weight in the accumulation dtype
template <typename scalar_t, bool HAS_W, bool HAS_PW>
struct BceTerms {
  using acc_t = typename Acc<scalar_t>::type;
  using V = Vectorized<acc_t>;
  const scalar_t* x;
  const acc_t *t, *w, *pw;
  V weight(int64_t i, int64_t cnt) const {
    if constexpr (HAS_W) return load<acc_t>(w + i, cnt);
    else return V(0);  // unused
  }
  V pos_weight(int64_t i, int64_t cnt) const {
    if constexpr (HAS_PW) return load<acc_t>(pw + i, cnt);
    else return V(0);  // unused
  }
  V value(int64_t i, int64_t cnt) const {
    return elem::bce_value<HAS_W, HAS_PW>(load<acc_t>(x + i, cnt), load<acc_t>(t + i, cnt), weight(i, cnt),
                                          pos_weight(i, cnt));
  }
  V deriv(int64_t i, int64_t cnt) const {
    return elem::bce_deriv<HAS_W, HAS_PW>(load<acc_t>(x + i, cnt), load<acc_t>(t + i, cnt), weight(i, cnt),
                                          pos_weight(i, cnt));
  }
};

// calls f(terms) with the BceTerms specialised for whether weight / pos_weight are present
template <typename scalar_t, typename F>
void with_bce_terms(const at::Tensor& xf, const at::Tensor& tf, const at::Tensor& wf, const at::Tensor& pf,
                    const F& f) {
  using acc_t = typename Acc<scalar_t>::type;
  const scalar_t* x = xf.data_ptr<scalar_t>();
  const acc_t* t = tf.data_ptr<acc_t>();
  const acc_t* w = wf.defined() ? wf.data_ptr<acc_t>() : nullptr;
  const acc_t* pw = pf.defined() ? pf.data_ptr<acc_t>() : nullptr;
  if (w && pw) f(BceTerms<scalar_t, true, true>{x, t, w, pw});
  else if (w) f(BceTerms<scalar_t, true, false>{x, t, w, pw});
  else if (pw) f(BceTerms<scalar_t, false, true>{x, t, w, pw});
  else f(BceTerms<scalar_t, false, false>{x, t, w, pw});
}

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

void check_cpu(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), "fastgan native CPU op: ", name, " must be a CPU tensor, got ", x.device());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "fastgan native op: ", name, " must be floating point, got ",
              x.scalar_type());
}

}  // namespace

std::vector<at::Tensor> pair_fwd_cpu(const c10::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t kind,
                                     at::ArrayRef<double> params, int64_t reduction) {
  at::Tensor real = real_opt.has_value() ? *real_opt : at::Tensor();
  check_cpu(fake, "fake");
  if (real.defined()) {
    check_cpu(real, "real");
    TORCH_CHECK(real.scalar_type() == fake.scalar_type(), "fastgan: real and fake dtypes differ");
  }
  TORCH_CHECK(params.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_pair_fwd", [&] {
    dispatch_kind(kind, [&](auto k) { out = pair_fwd_typed<scalar_t, decltype(k)::value>(real, fake, params, reduction); });
  });
  return out;
}

std::vector<at::Tensor> pair_bwd_cpu(const c10::optional<at::Tensor>& real_opt, const at::Tensor& fake, int64_t kind,
                                     at::ArrayRef<double> params, int64_t reduction, at::TensorList grads) {
  at::Tensor real = real_opt.has_value() ? *real_opt : at::Tensor();
  check_cpu(fake, "fake");
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_pair_bwd", [&] {
    dispatch_kind(kind, [&](auto k) {
      out = pair_bwd_typed<scalar_t, decltype(k)::value>(real, fake, params, reduction, grads);
    });
  });
  return out;
}

std::vector<at::Tensor> pair_fwd_saving_cpu(const c10::optional<at::Tensor>& real_opt, const at::Tensor& fake,
                                            int64_t kind, at::ArrayRef<double> params, int64_t reduction) {
  at::Tensor real = real_opt.has_value() ? *real_opt : at::Tensor();
  check_cpu(fake, "fake");
  if (real.defined()) {
    check_cpu(real, "real");
    TORCH_CHECK(real.scalar_type() == fake.scalar_type(), "fastgan: real and fake dtypes differ");
  }
  TORCH_CHECK(reduction != NONE, "fastgan: pair_fwd_saving reduces");
  TORCH_CHECK(params.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  const at::TensorOptions acc = fake.options().dtype(acc_type(fake.scalar_type()));
  at::Tensor d_r = real.defined() ? at::empty(real.sizes(), acc) : at::Tensor();
  at::Tensor d_f = at::empty(fake.sizes(), acc);
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fake.scalar_type(), "fastgan_pair_fwd_saving", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    acc_t* deriv[2] = {real.defined() ? d_r.data_ptr<acc_t>() : nullptr, d_f.data_ptr<acc_t>()};
    dispatch_kind(kind, [&](auto k) {
      out = pair_fwd_typed<scalar_t, decltype(k)::value>(real, fake, params, reduction, deriv);
    });
  });
  if (real.defined()) out.push_back(d_r);
  out.push_back(d_f);
  return out;
}

at::Tensor pair_scale_cpu(const at::Tensor& d, const at::Tensor& up, int64_t reduction, at::ScalarType dtype) {
  check_cpu(d, "d");
  TORCH_CHECK(d.scalar_type() == acc_type(dtype) && d.is_contiguous(),
              "fastgan: pair_scale takes pair_fwd_saving's contiguous derivatives");
  TORCH_CHECK(up.numel() == 1 && up.device().is_cpu(), "fastgan: pair_scale's upstream gradient is a CPU scalar");
  at::Tensor g = at::empty(d.sizes(), d.options().dtype(dtype));
  const int64_t n = d.numel();
  // reading a 0-d CPU tensor is a memory load, not a device sync
  const double c = up.item<double>() * mean_weight(reduction, n);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "fastgan_pair_scale", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    const Vectorized<acc_t> cv(static_cast<acc_t>(c));
    const acc_t* dp = d.data_ptr<acc_t>();
    elementwise<acc_t>(g.data_ptr<scalar_t>(), n,
                       [&](int64_t i, int64_t cnt) { return cv * Vectorized<acc_t>::loadu(dp + i, cnt); });
  });
  return g;
}

// ---------------------------------------------------------------- pair losses over lists

namespace {

// One work item of a list op: the chunk [begin, end) of tensor `tensor`.  Items are the
// tensors' fixed kChunk chunks, tensor by tensor, so a tensor's chunk sums are the same
// bits as pair_fwd's and are added in the same (chunk) order, whatever the threads.
struct ListItem {
  int64_t tensor, begin, end;
};

std::vector<ListItem> list_items(const std::vector<at::Tensor>& xs, const std::vector<bool>& use,
                                 int64_t& elements) {
  std::vector<ListItem> items;
  elements = 0;
  for (size_t k = 0; k < xs.size(); k++) {
    if (!use[k]) continue;
    const int64_t n = xs[k].numel();
    elements += n;
    for (int64_t b = 0; b < n; b += kChunk) items.push_back({static_cast<int64_t>(k), b, std::min(n, b + kChunk)});
  }
  return items;
}

// f(item index) for every item, in one parallel region over all the tensors' items: a
// task gets about `work` elements (so a list of small tensors runs inline, in one
// thread, rather than as one small parallel region per tensor)
template <typename F>
void for_items(const std::vector<ListItem>& items, int64_t elements, int64_t work, const F& f) {
  const int64_t count = static_cast<int64_t>(items.size());
  if (count == 0) return;
  const int64_t grain = std::max<int64_t>(1, (count * work + std::max<int64_t>(elements, 1) - 1) /
                                                 std::max<int64_t>(elements, 1));
  at::parallel_for(0, count, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) f(i);
  });
}

// the list's tensors (reals then fakes), contiguous (a copy only for non-contiguous ones)
std::vector<at::Tensor> list_inputs(at::TensorList reals, at::TensorList fakes, at::ArrayRef<double> params) {
  TORCH_CHECK(!fakes.empty(), "fastgan: pair_list needs at least one fake tensor");
  TORCH_CHECK(reals.empty() || reals.size() == fakes.size(),
              "fastgan: pair_list needs no reals or one real per fake, got ", reals.size(), " and ", fakes.size());
  TORCH_CHECK(params.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  std::vector<at::Tensor> xs;
  xs.reserve(reals.size() + fakes.size());
  for (const auto& x : reals) xs.push_back(x);
  for (const auto& x : fakes) xs.push_back(x);
  for (auto& x : xs) {
    check_cpu(x, "a pair_list tensor");
    TORCH_CHECK(x.scalar_type() == fakes[0].scalar_type(), "fastgan: pair_list tensors differ in dtype: ",
                x.scalar_type(), " and ", fakes[0].scalar_type());
    x = x.contiguous();
  }
  return xs;
}

template <typename scalar_t, int KIND>
at::Tensor pair_list_fwd_typed(const std::vector<at::Tensor>& xs, int64_t nr, at::ArrayRef<double> p,
                               int64_t reduction) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t N = static_cast<int64_t>(xs.size()) - nr;
  int64_t elements;
  const auto items = list_items(xs, std::vector<bool>(xs.size(), true), elements);
  std::vector<acc_t> partial(items.size(), acc_t(0));
  for_items(items, elements, 4 * kChunk, [&](int64_t i) {
    const ListItem& it = items[i];
    const int side = it.tensor < nr ? 0 : 1;
    const PairSide<scalar_t, KIND> sd(xs[it.tensor].data_ptr<scalar_t>(), p[2 * side], p[2 * side + 1]);
    partial[i] = chunk_sum<acc_t>(it.begin, it.end, [&](int64_t j, int64_t cnt) { return sd.value(j, cnt); });
  });
  // each tensor's sum: its chunks in order, from 0, as chunked_sum
  std::vector<acc_t> sums(xs.size(), acc_t(0));
  for (size_t i = 0; i < items.size(); i++) sums[items[i].tensor] += partial[i];
  at::Tensor out = at::empty({N}, xs.back().options());
  scalar_t* o = out.data_ptr<scalar_t>();
  for (int64_t d = 0; d < N; d++) {
    double total = 0;
    bool empty_mean = false;
    if (nr) add_side<acc_t>(total, empty_mean, sums[d], xs[d].numel(), reduction);
    add_side<acc_t>(total, empty_mean, sums[nr + d], xs[nr + d].numel(), reduction);
    o[d] = static_cast<scalar_t>(side_total<acc_t>(total, empty_mean));
  }
  return out;
}

template <typename scalar_t, int KIND>
std::vector<at::Tensor> pair_list_bwd_typed(const std::vector<at::Tensor>& xs, const std::vector<bool>& use,
                                            int64_t nr, at::ArrayRef<double> p, int64_t reduction,
                                            const double* up) {
  using acc_t = typename Acc<scalar_t>::type;
  using V = Vectorized<acc_t>;
  std::vector<at::Tensor> out;
  out.reserve(xs.size());
  std::vector<scalar_t*> gp(xs.size(), nullptr);
  std::vector<acc_t> scale(xs.size(), acc_t(0));
  for (size_t k = 0; k < xs.size(); k++) {
    if (!use[k]) {
      out.push_back(at::empty({0}, xs[k].options()));  // not needed: an empty placeholder
      continue;
    }
    out.push_back(at::empty(xs[k].sizes(), xs[k].options()));
    gp[k] = out.back().data_ptr<scalar_t>();
    const int64_t d = static_cast<int64_t>(k) < nr ? static_cast<int64_t>(k) : static_cast<int64_t>(k) - nr;
    scale[k] = pair_grad_scale<acc_t>(up[d], reduction, xs[k].numel());
  }
  int64_t elements;
  const auto items = list_items(xs, use, elements);
  for_items(items, elements, 2 * kChunk, [&](int64_t i) {
    const ListItem& it = items[i];
    const int side = it.tensor < nr ? 0 : 1;
    const PairSide<scalar_t, KIND> sd(xs[it.tensor].data_ptr<scalar_t>(), p[2 * side], p[2 * side + 1]);
    const V c(scale[it.tensor]);
    elementwise_range<acc_t>(gp[it.tensor], it.begin, it.end,
                             [&](int64_t j, int64_t cnt) { return sd.grad(c, j, cnt); });
  });
  return out;
}

}  // namespace

at::Tensor pair_list_fwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t kind, at::ArrayRef<double> params,
                             int64_t reduction) {
  TORCH_CHECK(reduction == MEAN || reduction == SUM, "fastgan: pair_list reduces (mean or sum)");
  const std::vector<at::Tensor> xs = list_inputs(reals, fakes, params);
  const int64_t nr = static_cast<int64_t>(reals.size());
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fakes[0].scalar_type(), "fastgan_pair_list_fwd", [&] {
    dispatch_kind(kind, [&](auto k) {
      out = pair_list_fwd_typed<scalar_t, decltype(k)::value>(xs, nr, params, reduction);
    });
  });
  return out;
}

std::vector<at::Tensor> pair_list_bwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t kind,
                                          at::ArrayRef<double> params, int64_t reduction, const at::Tensor& up,
                                          const c10::optional<c10::List<bool>>& needs) {
  TORCH_CHECK(reduction == MEAN || reduction == SUM, "fastgan: pair_list reduces (mean or sum)");
  const std::vector<at::Tensor> xs = list_inputs(reals, fakes, params);
  const int64_t nr = static_cast<int64_t>(reals.size());
  TORCH_CHECK(up.numel() == static_cast<int64_t>(fakes.size()) && up.device().is_cpu(),
              "fastgan: pair_list_bwd needs one upstream gradient per discriminator (a CPU tensor of ",
              fakes.size(), "), got ", up.sizes());
  std::vector<bool> use(xs.size(), true);
  if (needs.has_value()) {
    TORCH_CHECK(needs->size() == xs.size(), "fastgan: pair_list_bwd needs one flag per tensor");
    for (size_t k = 0; k < xs.size(); k++) use[k] = needs->get(k);
  }
  // the upstream gradients as doubles (exact for every floating dtype), as pair_bwd reads them
  const at::Tensor u = up.to(at::kDouble).contiguous();
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, fakes[0].scalar_type(), "fastgan_pair_list_bwd", [&] {
    dispatch_kind(kind, [&](auto k) {
      out = pair_list_bwd_typed<scalar_t, decltype(k)::value>(xs, use, nr, params, reduction, u.data_ptr<double>());
    });
  });
  return out;
}

at::Tensor bce_fwd_cpu(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w_opt,
                       const c10::optional<at::Tensor>& pw_opt, int64_t reduction) {
  check_cpu(x, "input");
  check_cpu(t, "target");
  at::Tensor xf = flat(x), tf = acc_flat(t, x), wf = expand_flat(w_opt, x), pf = expand_flat(pw_opt, x);
  const int64_t n = xf.numel();
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastgan_bce_fwd", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    with_bce_terms<scalar_t>(xf, tf, wf, pf, [&](const auto& terms) {
      if (reduction == NONE) {
        at::Tensor o = at::empty_like(xf);
        elementwise<acc_t>(o.data_ptr<scalar_t>(), n, [&](int64_t i, int64_t c) { return terms.value(i, c); });
        out = o.view(x.sizes());
      } else {
        acc_t s = chunked_sum<acc_t>(n, [&](int64_t i, int64_t c) { return terms.value(i, c); });
        acc_t r = (reduction == MEAN && n == 0) ? std::numeric_limits<acc_t>::quiet_NaN()
                                                : static_cast<acc_t>(mean_weight(reduction, n)) * s;
        out = at::scalar_tensor(r, x.options());
      }
    });
  });
  return out;
}

at::Tensor bce_bwd_cpu(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w_opt,
                       const c10::optional<at::Tensor>& pw_opt, int64_t reduction, const at::Tensor& up) {
  check_cpu(x, "input");
  at::Tensor xf = flat(x), tf = acc_flat(t, x), wf = expand_flat(w_opt, x), pf = expand_flat(pw_opt, x);
  const int64_t n = xf.numel();
  at::Tensor g = at::empty_like(xf);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastgan_bce_bwd", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    using V = Vectorized<acc_t>;
    with_bce_terms<scalar_t>(xf, tf, wf, pf, [&](const auto& terms) {
      if (reduction == NONE) {
        at::Tensor uf = flat(up.to(x.scalar_type()));
        const scalar_t* u = uf.data_ptr<scalar_t>();
        elementwise<acc_t>(g.data_ptr<scalar_t>(), n,
                           [&](int64_t i, int64_t c) { return load<acc_t>(u + i, c) * terms.deriv(i, c); });
      } else {
        const V c(static_cast<acc_t>(up.to(at::kDouble).item<double>()) *
                  static_cast<acc_t>(mean_weight(reduction, n)));
        elementwise<acc_t>(g.data_ptr<scalar_t>(), n, [&](int64_t i, int64_t cnt) { return c * terms.deriv(i, cnt); });
      }
    });
  });
  return g.view(x.sizes());
}

std::vector<at::Tensor> penalty_fwd_cpu(const at::Tensor& grads, double center, bool one_sided, int64_t reduction) {
  check_cpu(grads, "grads");
  TORCH_CHECK(grads.dim() >= 1, "fastgan: grads must have a batch dimension");
  at::Tensor gf = grads.contiguous();
  const int64_t B = grads.size(0);
  const int64_t D = B ? gf.numel() / B : 0;
  at::Tensor sq = at::empty({B}, grads.options().dtype(acc_type(grads.scalar_type())));
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "fastgan_penalty_fwd", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    using V = Vectorized<acc_t>;
    const scalar_t* g = gf.data_ptr<scalar_t>();
    acc_t* sqp = sq.data_ptr<acc_t>();
    // rows in parallel; each row's sum in fixed chunks (deterministic)
    const int64_t grain = std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1));
    at::parallel_for(0, B, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const scalar_t* row = g + r * D;
        acc_t s = 0;
        for (int64_t c0 = 0; c0 < D; c0 += kChunk) {
          const int64_t c1 = std::min(D, c0 + kChunk);
          V a(0);
          acc_t tail = 0;
          int64_t i = c0;
          for (; i + V::size() <= c1; i += V::size()) {
            V v = load<acc_t>(row + i);
            a += v * v;
          }
          if (i < c1) {
            V v = load<acc_t>(row + i, c1 - i);
            tail = lane_sum<acc_t>(v * v, c1 - i);
          }
          s += lane_sum<acc_t>(a) + tail;
        }
        sqp[r] = s;
      }
    });
    auto term = [&](acc_t q) -> acc_t { return elem::penalty_term<acc_t>(q, center, one_sided); };
    if (reduction == NONE) {
      out = at::empty({B}, grads.options());
      scalar_t* o = out.data_ptr<scalar_t>();
      for (int64_t r = 0; r < B; r++) o[r] = static_cast<scalar_t>(term(sqp[r]));
    } else {
      acc_t s = 0;
      for (int64_t r = 0; r < B; r++) s += term(sqp[r]);
      acc_t res = (reduction == MEAN && B == 0) ? std::numeric_limits<acc_t>::quiet_NaN()
                                                : static_cast<acc_t>(mean_weight(reduction, B)) * s;
      out = at::scalar_tensor(res, grads.options());
    }
  });
  return {out, sq};
}

at::Tensor penalty_bwd_cpu(const at::Tensor& grads, const at::Tensor& sq, double center, bool one_sided,
                           int64_t reduction, const at::Tensor& up) {
  check_cpu(grads, "grads");
  at::Tensor gf = grads.contiguous();
  const int64_t B = grads.size(0);
  const int64_t D = B ? gf.numel() / B : 0;
  at::Tensor dg = at::empty_like(gf);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grads.scalar_type(), "fastgan_penalty_bwd", [&] {
    using acc_t = typename Acc<scalar_t>::type;
    using V = Vectorized<acc_t>;
    const scalar_t* g = gf.data_ptr<scalar_t>();
    scalar_t* o = dg.data_ptr<scalar_t>();
    at::Tensor sqc = sq.contiguous();
    const acc_t* sqp = sqc.data_ptr<acc_t>();
    at::Tensor upc = up.to(at::kDouble).contiguous();
    const double* u = upc.data_ptr<double>();
    const double w = mean_weight(reduction, B);
    const int64_t grain = std::max<int64_t>(1, kChunk / std::max<int64_t>(D, 1));
    at::parallel_for(0, B, grain, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const acc_t k = elem::penalty_coef<acc_t>(sqp[r], center, one_sided);
        const acc_t ur = static_cast<acc_t>(reduction == NONE ? u[r] : u[0] * w);
        const V coef(ur * k);
        for (int64_t i = 0; i < D; i += V::size()) {
          const int64_t cnt = std::min<int64_t>(V::size(), D - i);
          store<acc_t>(o + r * D + i, coef * load<acc_t>(g + r * D + i, cnt), cnt);
        }
      }
    });
  });
  return dg.view(grads.sizes());
}

// ---------------------------------------------------------------- feature matching

namespace {

void check_fm(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales) {
  TORCH_CHECK(reals.size() == fakes.size() && scales.size() == fakes.size(),
              "fastgan: fm needs one real map, one fake map and one scale per index");
  TORCH_CHECK(p == 1 || p == 2, "fastgan: fm p must be 1 or 2, got ", p);
  for (size_t m = 0; m < fakes.size(); m++) {
    TORCH_CHECK(reals[m].sizes() == fakes[m].sizes() && reals[m].scalar_type() == fakes[m].scalar_type(),
                "fastgan: fm map ", m, ": real and fake differ in shape or dtype");
  }
}

}  // namespace

at::Tensor fm_fwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales) {
  check_fm(reals, fakes, p, scales);
  at::ScalarType dt = fakes.empty() ? at::kFloat : fakes[0].scalar_type();
  double total = 0;
  for (size_t m = 0; m < fakes.size(); m++) {
    dt = at::promoteTypes(dt, fakes[m].scalar_type());
    check_cpu(fakes[m], "fake feature map");
    check_cpu(reals[m], "real feature map");
    at::Tensor r = flat(reals[m]), g = flat(fakes[m]);
    const int64_t n = g.numel();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "fastgan_fm_fwd", [&] {
      using acc_t = typename Acc<scalar_t>::type;
      const scalar_t* rp = r.data_ptr<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      acc_t s = p == 1 ? chunked_sum<acc_t>(n, [&](int64_t i, int64_t cnt) {
                           return (load<acc_t>(gp + i, cnt) - load<acc_t>(rp + i, cnt)).abs();
                         })
                       : chunked_sum<acc_t>(n, [&](int64_t i, int64_t cnt) {
                           const auto d = load<acc_t>(gp + i, cnt) - load<acc_t>(rp + i, cnt);
                           return d * d;
                         });
      // a map with no elements: its mean is nan, as torch's (the scale is 1/0 = inf there);
      // its sum is 0
      total += n == 0 ? (std::isinf(scales[m]) ? std::numeric_limits<double>::quiet_NaN() : 0.0)
                      : scales[m] * static_cast<double>(s);
    });
  }
  return at::scalar_tensor(total, at::TensorOptions().dtype(dt));
}

std::vector<at::Tensor> fm_bwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales,
                                   const at::Tensor& up) {
  check_fm(reals, fakes, p, scales);
  const double u = up.to(at::kDouble).item<double>();
  std::vector<at::Tensor> out;
  for (size_t m = 0; m < fakes.size(); m++) {
    at::Tensor r = flat(reals[m]), g = flat(fakes[m]);
    at::Tensor d = at::empty_like(g);
    const int64_t n = g.numel();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "fastgan_fm_bwd", [&] {
      using acc_t = typename Acc<scalar_t>::type;
      using V = Vectorized<acc_t>;
      const scalar_t* rp = r.data_ptr<scalar_t>();
      const scalar_t* gp = g.data_ptr<scalar_t>();
      const V c(static_cast<acc_t>(u * scales[m] * (p == 1 ? 1.0 : 2.0)));
      if (p == 1) {
        const V zero(0), one(1);
        elementwise<acc_t>(d.data_ptr<scalar_t>(), n, [&](int64_t i, int64_t cnt) {
          const V x = load<acc_t>(gp + i, cnt) - load<acc_t>(rp + i, cnt);
          // sign(x): 1, -1, or 0 at x = 0 (torch's abs'(0) = 0); nan stays nan
          const V sgn = V::blendv(zero, one, x > zero) - V::blendv(zero, one, x < zero);
          return c * V::blendv(sgn, x, x != x);
        });
      } else {
        elementwise<acc_t>(d.data_ptr<scalar_t>(), n, [&](int64_t i, int64_t cnt) {
          return c * (load<acc_t>(gp + i, cnt) - load<acc_t>(rp + i, cnt));
        });
      }
    });
    out.push_back(d.view(fakes[m].sizes()));
  }
  return out;
}

}  // namespace fastgan

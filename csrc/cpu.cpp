// fastgan native CPU kernels: one pass over the data, inner loops vectorised with
// ATen's at::vec::Vectorized (SLEEF exp / log1p), at::parallel_for over fixed-size
// chunks so that small inputs stay single-threaded and the reduction order (and so
// the result, bit for bit) does not depend on the number of threads.

#include "cpu_common.h"

namespace fastgan {
namespace {

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

}  // namespace fastgan

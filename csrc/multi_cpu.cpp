// fastgan native CPU kernels over lists of tensors: a pair loss over the discriminators'
// outputs and feature matching over every map, each one parallel region over every
// tensor's fixed chunks (so a tensor's sum is the same bits as the per-tensor op's).

#include "cpu_common.h"

namespace fastgan {

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

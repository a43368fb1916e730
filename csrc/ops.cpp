// fastgan native ops: schemas (one place), CPU kernels, and autograd registered in C++.
//
// Two layers:
//   raw ops       pair_fwd / pair_bwd / bce_fwd / bce_bwd / penalty_fwd / penalty_bwd / fm_fwd / fm_bwd:
//                 kernels only (CPU here, CUDA in cuda.cu), no autograd
//   autograd ops  pair_loss / bce_loss / penalty: a torch::autograd::Function registered for
//                 the Autograd dispatch key.  First derivatives come from the backward
//                 kernels; when a graph of the backward is requested (create_graph=True) the
//                 backward is composed of differentiable ATen ops instead, so second
//                 derivatives are exact, never silently wrong.
// Autograd in C++ keeps an eager call to one dispatcher round trip (measured against a
// Python autograd.Function in benchmarks/results/native-cpu.md); Python reaches the
// autograd ops through the pybind11 functions at the end of this file.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/extension.h>
#include <torch/library.h>

#include "autograd_rules.h"
#include "fastgan.h"

namespace fastgan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

c10::optional<at::Tensor> opt(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

// ------------------------------------------------------------------ raw ops through the dispatcher
// (so CPU, CUDA and Meta tensors each reach their kernel)

std::vector<at::Tensor> call_pair_fwd(const at::Tensor& real, const at::Tensor& fake, int64_t kind,
                                      at::ArrayRef<double> params, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_fwd", "")
                       .typed<std::vector<at::Tensor>(const c10::optional<at::Tensor>&, const at::Tensor&, int64_t,
                                                      at::ArrayRef<double>, int64_t)>();
  return op.call(opt(real), fake, kind, params, reduction);
}

std::vector<at::Tensor> call_pair_bwd(const at::Tensor& real, const at::Tensor& fake, int64_t kind,
                                      at::ArrayRef<double> params, int64_t reduction, at::TensorList grads) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_bwd", "")
                       .typed<std::vector<at::Tensor>(const c10::optional<at::Tensor>&, const at::Tensor&, int64_t,
                                                      at::ArrayRef<double>, int64_t, at::TensorList)>();
  return op.call(opt(real), fake, kind, params, reduction, grads);
}

at::Tensor call_bce_fwd(const at::Tensor& x, const at::Tensor& t, const at::Tensor& w, const at::Tensor& pw,
                        int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::bce_fwd", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                         const c10::optional<at::Tensor>&, int64_t)>();
  return op.call(x, t, opt(w), opt(pw), reduction);
}

at::Tensor call_bce_bwd(const at::Tensor& x, const at::Tensor& t, const at::Tensor& w, const at::Tensor& pw,
                        int64_t reduction, const at::Tensor& up) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::bce_bwd", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                         const c10::optional<at::Tensor>&, int64_t, const at::Tensor&)>();
  return op.call(x, t, opt(w), opt(pw), reduction, up);
}

std::vector<at::Tensor> call_penalty_fwd(const at::Tensor& g, double center, bool one_sided, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::penalty_fwd", "")
                       .typed<std::vector<at::Tensor>(const at::Tensor&, double, bool, int64_t)>();
  return op.call(g, center, one_sided, reduction);
}

at::Tensor call_penalty_bwd(const at::Tensor& g, const at::Tensor& sq, double center, bool one_sided,
                            int64_t reduction, const at::Tensor& up) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::penalty_bwd", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, double, bool, int64_t,
                                         const at::Tensor&)>();
  return op.call(g, sq, center, one_sided, reduction, up);
}

std::vector<at::Tensor> call_pair_fwd_saving(const at::Tensor& real, const at::Tensor& fake, int64_t kind,
                                             at::ArrayRef<double> params, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_fwd_saving", "")
                       .typed<std::vector<at::Tensor>(const c10::optional<at::Tensor>&, const at::Tensor&, int64_t,
                                                      at::ArrayRef<double>, int64_t)>();
  return op.call(opt(real), fake, kind, params, reduction);
}

at::Tensor call_pair_scale(const at::Tensor& d, const at::Tensor& up, int64_t reduction, at::ScalarType dtype) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_scale", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, at::ScalarType)>();
  return op.call(d, up, reduction, dtype);
}

// ------------------------------------------------------------------ Meta kernels (shapes and dtypes only)
// The outputs the CPU / CUDA kernels return, for fake tensors (torch.compile, opcheck):
// contiguous; a reduced loss 0-d in the input's dtype; "none" shaped like its input;
// the penalty's per-sample squared norms in the accumulation dtype.  Sizes are SymInts,
// so dynamic shapes trace.

at::Tensor like_meta(const at::Tensor& x, at::ScalarType dtype) {
  return at::empty_symint(x.sym_sizes(), x.options().dtype(dtype));
}

std::vector<at::Tensor> pair_fwd_meta(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                      at::ArrayRef<double> params, int64_t reduction) {
  TORCH_CHECK(params.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  const bool has_real = real.has_value() && real->defined();
  if (reduction != NONE) return {at::empty({}, fake.options())};
  std::vector<at::Tensor> out;
  if (has_real) out.push_back(like_meta(*real, real->scalar_type()));
  out.push_back(like_meta(fake, fake.scalar_type()));
  return out;
}

std::vector<at::Tensor> pair_bwd_meta(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                      at::ArrayRef<double> params, int64_t reduction, at::TensorList grads) {
  const bool has_real = real.has_value() && real->defined();
  return {has_real ? like_meta(*real, real->scalar_type()) : at::empty({0}, fake.options()),
          like_meta(fake, fake.scalar_type())};
}

std::vector<at::Tensor> pair_fwd_saving_meta(const c10::optional<at::Tensor>& real, const at::Tensor& fake,
                                             int64_t kind, at::ArrayRef<double> params, int64_t reduction) {
  TORCH_CHECK(reduction != NONE, "fastgan: pair_fwd_saving reduces");
  const auto acc = acc_type(fake.scalar_type());
  std::vector<at::Tensor> out{at::empty({}, fake.options())};
  if (real.has_value() && real->defined()) out.push_back(like_meta(*real, acc));
  out.push_back(like_meta(fake, acc));
  return out;
}

at::Tensor pair_scale_meta(const at::Tensor& d, const at::Tensor& up, int64_t reduction, at::ScalarType dtype) {
  return like_meta(d, dtype);
}

at::Tensor fm_fwd_meta(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales) {
  at::ScalarType dt = fakes.empty() ? at::kFloat : fakes[0].scalar_type();
  for (const auto& f : fakes) dt = at::promoteTypes(dt, f.scalar_type());
  return at::empty({}, at::TensorOptions().dtype(dt).device(at::kMeta));
}

std::vector<at::Tensor> fm_bwd_meta(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales,
                                    const at::Tensor& up) {
  std::vector<at::Tensor> out;
  for (const auto& f : fakes) out.push_back(at::empty(f.sizes(), f.options()));
  return out;
}

at::Tensor pair_list_fwd_meta(at::TensorList reals, at::TensorList fakes, int64_t kind, at::ArrayRef<double> params,
                              int64_t reduction) {
  TORCH_CHECK(!fakes.empty(), "fastgan: pair_list needs at least one fake tensor");
  TORCH_CHECK(params.size() == 4, "fastgan: params must be {sgn_r, t_r, sgn_f, t_f}");
  return at::empty({static_cast<int64_t>(fakes.size())}, fakes[0].options());
}

std::vector<at::Tensor> pair_list_bwd_meta(at::TensorList reals, at::TensorList fakes, int64_t kind,
                                           at::ArrayRef<double> params, int64_t reduction, const at::Tensor& up,
                                           const c10::optional<c10::List<bool>>& needs) {
  std::vector<at::Tensor> out;
  size_t k = 0;
  for (at::TensorList side : {reals, fakes}) {
    for (const auto& x : side) {
      const bool use = !needs.has_value() || needs->get(k);
      out.push_back(use ? like_meta(x, x.scalar_type()) : at::empty({0}, x.options()));
      k++;
    }
  }
  return out;
}

at::Tensor bce_fwd_meta(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                        const c10::optional<at::Tensor>& pw, int64_t reduction) {
  return reduction == NONE ? like_meta(x, x.scalar_type()) : at::empty({}, x.options());
}

at::Tensor bce_bwd_meta(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                        const c10::optional<at::Tensor>& pw, int64_t reduction, const at::Tensor& up) {
  return like_meta(x, x.scalar_type());
}

std::vector<at::Tensor> penalty_fwd_meta(const at::Tensor& g, double center, bool one_sided, int64_t reduction) {
  TORCH_CHECK(g.dim() >= 1, "fastgan: grads must have a batch dimension");
  const c10::SymInt B = g.sym_size(0);
  at::Tensor out = reduction == NONE ? at::empty_symint({B}, g.options()) : at::empty({}, g.options());
  return {out, at::empty_symint({B}, g.options().dtype(acc_type(g.scalar_type())))};
}

at::Tensor penalty_bwd_meta(const at::Tensor& g, const at::Tensor& sq, double center, bool one_sided,
                            int64_t reduction, const at::Tensor& up) {
  return like_meta(g, g.scalar_type());
}

// ------------------------------------------------------------------ the differentiable backward rule
// The native backend's ONE differentiable (double-backward) rule, in ATen tensor ops:
// the backward that autograd records when a graph of the gradient is requested
// (create_graph=True), and BceFn's gradients in the target / weight / pos_weight.  It is
// written here, on tensors, because the kernels' element functions (elementwise.h) are
// not differentiable; it follows their branch structure (dbce's non-cancelling branch
// per tail, hinge's zero at the margin, 0 · ∞ = 0 in the label products), so first
// derivatives agree with the kernels and second derivatives are exact.  It is the only
// other source of these formulas; tests/test_native.py, test_autograd.py and the oracle
// tests check it against the kernels and the reference.
//   autograd_rules.h         mask0_aten / mul0_aten (the 0 · ∞ = 0 products), dbce_aten
//                            (d BCEwithlogits / d s), dterm_aten (d term / d s per kind)
//   PairLossFn / BceFn / PenaltyFn::backward here, RaganFn / RpganFn::backward in
//   relativistic.cpp: their create_graph (ATen) branches

// ------------------------------------------------------------------ autograd functions

struct PairLossFn : public torch::autograd::Function<PairLossFn> {
  // `real` is an empty placeholder when has_real is false (generator losses): autograd
  // functions take defined tensors only
  static variable_list forward(AutogradContext* ctx, const at::Tensor& real_in, const at::Tensor& fake, bool has_real,
                               int64_t kind, std::vector<double> params, int64_t reduction, bool saving) {
    at::AutoDispatchBelowADInplaceOrView guard;
    const at::Tensor real = has_real ? real_in : at::Tensor();
    ctx->saved_data["has_real"] = has_real;
    ctx->saved_data["kind"] = kind;
    ctx->saved_data["params"] = params;
    ctx->saved_data["reduction"] = reduction;
    ctx->saved_data["saving"] = saving;
    if (saving) {  // {loss, d_real, d_fake} or {loss, d_fake}: the backward is a scale
      auto out = call_pair_fwd_saving(real, fake, kind, params, reduction);
      ctx->save_for_backward({real_in, fake, has_real ? out[1] : real_in, out.back()});
      return {out[0]};
    }
    ctx->save_for_backward({real_in, fake});
    return call_pair_fwd(real, fake, kind, params, reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor real = ctx->saved_data["has_real"].toBool() ? saved[0] : at::Tensor();
    const at::Tensor& fake = saved[1];
    const int64_t kind = ctx->saved_data["kind"].toInt();
    const std::vector<double> p = ctx->saved_data["params"].toDoubleVector();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    at::Tensor g_r, g_f;
    if (at::GradMode::is_enabled()) {  // create_graph: differentiable formulas
      auto side = [&](const at::Tensor& x, int i, const at::Tensor& up) {
        const auto acc = acc_type(x.scalar_type());  // half types in float32, as the kernels
        at::Tensor d = dterm_aten(x.to(acc), kind, p[2 * i], p[2 * i + 1]);
        at::Tensor u = up.to(acc);
        return (reduction == NONE ? u * d : (u * mean_scalar(reduction, x.sym_numel())) * d).to(x.scalar_type());
      };
      if (real.defined()) {
        g_r = side(real, 0, reduction == NONE ? grads[0] : grads[0]);
        g_f = side(fake, 1, reduction == NONE ? grads[1] : grads[0]);
      } else {
        g_f = side(fake, 1, grads[0]);
      }
    } else if (ctx->saved_data["saving"].toBool()) {  // g = upstream · mean weight · d, one scale per side
      if (real.defined()) g_r = call_pair_scale(saved[2], grads[0], reduction, real.scalar_type());
      g_f = call_pair_scale(saved[3], grads[0], reduction, fake.scalar_type());
    } else {
      auto out = call_pair_bwd(real, fake, kind, p, reduction, grads);
      if (real.defined()) g_r = out[0];
      g_f = out[1];
    }
    return {g_r, g_f, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct BceFn : public torch::autograd::Function<BceFn> {
  // weight / pos_weight are empty placeholders when has_w / has_pw are false
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& t, const at::Tensor& w_in,
                            const at::Tensor& pw_in, bool has_w, bool has_pw, int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, t, w_in, pw_in});
    ctx->saved_data["has_w"] = has_w;
    ctx->saved_data["has_pw"] = has_pw;
    ctx->saved_data["reduction"] = reduction;
    return call_bce_fwd(x, t, has_w ? w_in : at::Tensor(), has_pw ? pw_in : at::Tensor(), reduction);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &t = saved[1];
    const at::Tensor w = ctx->saved_data["has_w"].toBool() ? saved[2] : at::Tensor();
    const at::Tensor pw = ctx->saved_data["has_pw"].toBool() ? saved[3] : at::Tensor();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    const at::Tensor& up = grads[0];
    const bool others = (t.defined() && t.requires_grad()) || (w.defined() && w.requires_grad()) ||
                        (pw.defined() && pw.requires_grad());
    if (!at::GradMode::is_enabled() && !others) {
      return {call_bce_bwd(x, t, w, pw, reduction, up), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(),
              at::Tensor(), at::Tensor()};
    }
    // w · [(1 − t)·s + lw·softplus(−s)], lw = 1 + (p − 1)·t, written as the reference:
    // w · [(1 − t)·softplus(s) + t·softplus(−s) + (p − 1)·t·softplus(−s)] with 0 · ∞ = 0, so
    // infinite logits give the limits, not ∞ − ∞; labels, weights and half inputs in the
    // accumulation dtype
    const auto acc = acc_type(x.scalar_type());
    const at::Tensor s = x.to(acc), tt = t.to(acc);
    const at::Tensor pp = pw.defined() ? pw.to(acc) : at::Tensor();
    const at::Tensor q = pw.defined() ? (pp - 1) * tt : at::Tensor();  // the extra weight on the positive term
    const at::Tensor u = reduction == NONE ? up.to(acc) : up.to(acc) * mean_scalar(reduction, x.sym_numel());
    const at::Tensor sp = at::softplus(s), sn = at::softplus(-s);
    at::Tensor ww = w.defined() ? w.to(acc) : at::ones_like(s);
    // d/ds = dbce(s, t) + (p − 1)·t·dbce(s, 1), as the kernels
    at::Tensor ds = pw.defined() ? dbce_aten(s, tt) + q * dbce_aten(s, 1.0) : dbce_aten(s, tt);
    at::Tensor dt = mask0_aten(tt, sn) - mask0_aten(1 - tt, sp);
    if (pw.defined()) dt = dt + (pp - 1) * mask0_aten(q, sn);
    at::Tensor gx = (u * ww * ds).to(x.scalar_type());
    at::Tensor gt = (u * ww * dt).to(t.scalar_type());
    at::Tensor gw, gp;
    if (w.defined()) {
      at::Tensor value = mul0_aten(1 - tt, sp) + mul0_aten(tt, sn);
      if (pw.defined()) value = value + mul0_aten(q, sn);
      gw = (u * value).sum_to_size_symint(w.sym_sizes()).to(w.scalar_type());
    }
    if (pw.defined()) {
      gp = (u * ww * tt * mask0_aten(q, sn)).sum_to_size_symint(pw.sym_sizes()).to(pw.scalar_type());
    }
    return {gx, gt, gw, gp, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct PenaltyFn : public torch::autograd::Function<PenaltyFn> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& g, double center, bool one_sided,
                            int64_t reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto out = call_penalty_fwd(g, center, one_sided, reduction);
    ctx->save_for_backward({g, out[1]});
    ctx->saved_data["center"] = center;
    ctx->saved_data["one_sided"] = one_sided;
    ctx->saved_data["reduction"] = reduction;
    return out[0];
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &g = saved[0], &sq = saved[1];
    const double center = ctx->saved_data["center"].toDouble();
    const bool one_sided = ctx->saved_data["one_sided"].toBool();
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    const at::Tensor& up = grads[0];
    if (!at::GradMode::is_enabled()) {
      return {call_penalty_bwd(g, sq, center, one_sided, reduction, up), at::Tensor(), at::Tensor(), at::Tensor()};
    }
    // differentiable: recompute the norms from g so the graph reaches g
    const c10::SymInt B = g.sym_size(0);
    c10::SymInt D = 1;
    for (int64_t i = 1; i < g.dim(); i++) D *= g.sym_size(i);
    const auto acc = acc_type(g.scalar_type());
    const at::Tensor ga = g.to(acc);
    at::Tensor g2 = ga.reshape_symint({B, D});
    at::Tensor k;
    if (center == 0) {
      k = at::full_symint({B}, 2.0, ga.options());
    } else {
      at::Tensor q = (g2 * g2).sum(1);
      at::Tensor zero = q == 0;
      at::Tensor n = at::where(zero, at::zeros_like(q), at::where(zero, at::ones_like(q), q).sqrt());
      at::Tensor d = n - center;
      if (one_sided) d = at::relu(d);
      k = at::where(zero, at::zeros_like(q), 2 * d / at::where(zero, at::ones_like(q), n));
    }
    at::Tensor coef = reduction == NONE ? up.to(acc) * k : up.to(acc) * mean_scalar(reduction, B) * k;
    std::vector<c10::SymInt> shape(g.dim(), 1);
    shape[0] = B;
    return {(coef.view_symint(shape) * ga).to(g.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// elements (real + fake) up to which the BCE forward saves its derivative for the backward
constexpr int64_t kSavingMax = int64_t(1) << 20;

variable_list pair_loss_autograd(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                 at::ArrayRef<double> params, int64_t reduction) {
  const bool has_real = real.has_value() && real->defined();
  // The saving forward (pair_fwd_saving) where it pays: BCE on CPU, reduced, when a
  // gradient will be taken; its exp(-|s|) then serves the loss and the derivative
  // (measured in benchmarks/results/native-cpu.md), up to kSavingMax elements.  Beyond
  // the caches it buys no time (bce_g_loss fwd+bwd at 2^24, Xeon 2 cores: 109.7 ms
  // saving, 105.5 ms recomputing, within the noise) and costs a buffer of d as large as
  // the input, so there the backward recomputes from the logits, as it does elsewhere.
  // (Under torch.compile with dynamic shapes the sizes are symbolic: no size cap there.)
  const bool symbolic = fake.unsafeGetTensorImpl()->has_symbolic_sizes_strides() ||
                        (has_real && real->unsafeGetTensorImpl()->has_symbolic_sizes_strides());
  const bool small = symbolic || fake.numel() + (has_real ? real->numel() : 0) <= kSavingMax;
  const bool saving = kind == BCE && reduction != NONE && fake.device().is_cpu() && small &&
                      at::GradMode::is_enabled() && (fake.requires_grad() || (has_real && real->requires_grad()));
  return PairLossFn::apply(has_real ? *real : at::empty({0}, fake.options()), fake, has_real, kind, params.vec(),
                           reduction, saving);
}

at::Tensor bce_loss_autograd(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                             const c10::optional<at::Tensor>& pw, int64_t reduction) {
  const bool has_w = w.has_value() && w->defined(), has_pw = pw.has_value() && pw->defined();
  at::Tensor none = at::empty({0}, x.options());
  return BceFn::apply(x, t, has_w ? *w : none, has_pw ? *pw : none, has_w, has_pw, reduction);
}

at::Tensor penalty_autograd(const at::Tensor& g, double center, bool one_sided, int64_t reduction) {
  return PenaltyFn::apply(g, center, one_sided, reduction);
}

// forward-only versions (inference mode, tensors without autograd keys)
std::vector<at::Tensor> pair_loss_plain(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                        at::ArrayRef<double> params, int64_t reduction) {
  return call_pair_fwd(real.has_value() ? *real : at::Tensor(), fake, kind, params, reduction);
}

at::Tensor bce_loss_plain(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                          const c10::optional<at::Tensor>& pw, int64_t reduction) {
  return call_bce_fwd(x, t, w.has_value() ? *w : at::Tensor(), pw.has_value() ? *pw : at::Tensor(), reduction);
}

at::Tensor penalty_plain(const at::Tensor& g, double center, bool one_sided, int64_t reduction) {
  return call_penalty_fwd(g, center, one_sided, reduction)[0];
}

// pybind11 entry points (see PYBIND11_MODULE below): the autograd ops through the dispatcher
std::vector<at::Tensor> py_pair_loss(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                     const std::vector<double>& params, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_loss", "")
                       .typed<std::vector<at::Tensor>(const c10::optional<at::Tensor>&, const at::Tensor&, int64_t,
                                                      at::ArrayRef<double>, int64_t)>();
  return op.call(real, fake, kind, params, reduction);
}

at::Tensor py_bce_loss(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                       const c10::optional<at::Tensor>& pw, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::bce_loss", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&,
                                         const c10::optional<at::Tensor>&, int64_t)>();
  return op.call(x, t, w, pw, reduction);
}

// the list ops are raw ops (their autograd is fused.Fused in native/multi.py, one Python node
// over all the tensors); pybind11 reaches them with one unboxed dispatcher call
at::Tensor py_pair_list_fwd(const std::vector<at::Tensor>& reals, const std::vector<at::Tensor>& fakes, int64_t kind,
                            const std::vector<double>& params, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_list_fwd", "")
                       .typed<at::Tensor(at::TensorList, at::TensorList, int64_t, at::ArrayRef<double>, int64_t)>();
  return op.call(reals, fakes, kind, params, reduction);
}

std::vector<at::Tensor> py_pair_list_bwd(const std::vector<at::Tensor>& reals, const std::vector<at::Tensor>& fakes,
                                         int64_t kind, const std::vector<double>& params, int64_t reduction,
                                         const at::Tensor& up, const std::vector<bool>& needs) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::pair_list_bwd", "")
                       .typed<std::vector<at::Tensor>(at::TensorList, at::TensorList, int64_t, at::ArrayRef<double>,
                                                      int64_t, const at::Tensor&,
                                                      const c10::optional<c10::List<bool>>&)>();
  c10::List<bool> flags;
  for (bool b : needs) flags.push_back(b);
  return op.call(reals, fakes, kind, params, reduction, up, flags);
}

at::Tensor py_penalty(const at::Tensor& g, double center, bool one_sided, int64_t reduction) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgan_native::penalty", "")
                       .typed<at::Tensor(const at::Tensor&, double, bool, int64_t)>();
  return op.call(g, center, one_sided, reduction);
}

}  // namespace

TORCH_LIBRARY(fastgan_native, m) {
  m.def("pair_fwd(Tensor? real, Tensor fake, int kind, float[] params, int reduction) -> Tensor[]");
  m.def("pair_bwd(Tensor? real, Tensor fake, int kind, float[] params, int reduction, Tensor[] grads) -> Tensor[]");
  m.def("bce_fwd(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, int reduction) -> Tensor");
  m.def("bce_bwd(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, int reduction, Tensor up) -> Tensor");
  m.def("penalty_fwd(Tensor grads, float center, bool one_sided, int reduction) -> Tensor[]");
  m.def("penalty_bwd(Tensor grads, Tensor sq, float center, bool one_sided, int reduction, Tensor up) -> Tensor");
  m.def("fm_fwd(Tensor[] reals, Tensor[] fakes, int p, float[] scales) -> Tensor");
  m.def("fm_bwd(Tensor[] reals, Tensor[] fakes, int p, float[] scales, Tensor up) -> Tensor[]");
  // pair losses over lists (one per discriminator): the N losses as a 1-D tensor; the
  // reals' then the fakes' gradients (an empty placeholder where needs is false)
  m.def("pair_list_fwd(Tensor[] reals, Tensor[] fakes, int kind, float[] params, int reduction) -> Tensor");
  m.def("pair_list_bwd(Tensor[] reals, Tensor[] fakes, int kind, float[] params, int reduction, Tensor up, "
        "bool[]? needs=None) -> Tensor[]");
  // the CPU saving forward and its backward (PairLossFn): {loss, d_real, d_fake} (no d_real
  // without real); g = up · mean weight · d in dtype, up the loss's 0-d CPU gradient
  m.def("pair_fwd_saving(Tensor? real, Tensor fake, int kind, float[] params, int reduction) -> Tensor[]");
  m.def("pair_scale(Tensor d, Tensor up, int reduction, ScalarType dtype) -> Tensor");
  m.def("pair_loss(Tensor? real, Tensor fake, int kind, float[] params, int reduction) -> Tensor[]");
  m.def("bce_loss(Tensor input, Tensor target, Tensor? weight, Tensor? pos_weight, int reduction) -> Tensor");
  m.def("penalty(Tensor grads, float center, bool one_sided, int reduction) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastgan_native, CPU, m) {
  m.impl("pair_fwd", &pair_fwd_cpu);
  m.impl("pair_bwd", &pair_bwd_cpu);
  m.impl("bce_fwd", &bce_fwd_cpu);
  m.impl("bce_bwd", &bce_bwd_cpu);
  m.impl("penalty_fwd", &penalty_fwd_cpu);
  m.impl("penalty_bwd", &penalty_bwd_cpu);
  m.impl("pair_fwd_saving", &pair_fwd_saving_cpu);
  m.impl("pair_scale", &pair_scale_cpu);
  m.impl("fm_fwd", &fm_fwd_cpu);
  m.impl("fm_bwd", &fm_bwd_cpu);
  m.impl("pair_list_fwd", &pair_list_fwd_cpu);
  m.impl("pair_list_bwd", &pair_list_bwd_cpu);
}

TORCH_LIBRARY_IMPL(fastgan_native, Meta, m) {
  m.impl("pair_fwd", &pair_fwd_meta);
  m.impl("pair_bwd", &pair_bwd_meta);
  m.impl("bce_fwd", &bce_fwd_meta);
  m.impl("bce_bwd", &bce_bwd_meta);
  m.impl("penalty_fwd", &penalty_fwd_meta);
  m.impl("penalty_bwd", &penalty_bwd_meta);
  m.impl("pair_fwd_saving", &pair_fwd_saving_meta);
  m.impl("pair_scale", &pair_scale_meta);
  m.impl("fm_fwd", &fm_fwd_meta);
  m.impl("fm_bwd", &fm_bwd_meta);
  m.impl("pair_list_fwd", &pair_list_fwd_meta);
  m.impl("pair_list_bwd", &pair_list_bwd_meta);
}

TORCH_LIBRARY_IMPL(fastgan_native, Autograd, m) {
  m.impl("pair_loss", &pair_loss_autograd);
  m.impl("bce_loss", &bce_loss_autograd);
  m.impl("penalty", &penalty_autograd);
}

TORCH_LIBRARY_IMPL(fastgan_native, CompositeExplicitAutograd, m) {
  m.impl("pair_loss", &pair_loss_plain);
  m.impl("bce_loss", &bce_loss_plain);
  m.impl("penalty", &penalty_plain);
}

}  // namespace fastgan

// Python entry points for eager calls: the same dispatcher ops, reached through pybind11
// instead of torch.ops' boxed call (measured cheaper per call, benchmarks/results/native-cpu.md)
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pair_loss", &fastgan::py_pair_loss);
  m.def("bce_loss", &fastgan::py_bce_loss);
  m.def("penalty", &fastgan::py_penalty);
  m.def("pair_list_fwd", &fastgan::py_pair_list_fwd);
  m.def("pair_list_bwd", &fastgan::py_pair_list_bwd);
  m.def("ragan_loss", &fastgan::py_ragan_loss);
  m.def("rpgan_loss", &fastgan::py_rpgan_loss);
}

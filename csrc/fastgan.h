// fastgan native ops: shared declarations of the CPU (cpu.cpp) and CUDA (cuda.cu) kernels.
// The loss formulas themselves (terms, derivatives, penalty terms) are in elementwise.h,
// written once for both devices; cpu.cpp and cuda.cu hold loops, launches and reductions;
// ops.cpp holds the op schemas, the Meta kernels, autograd and the differentiable
// (create_graph) backward rule in ATen ops.
//
// Conventions, the same as the Triton kernels (kernels/losses.py, kernels/penalty.py):
//   kind       0 BCE, 1 HINGE, 2 LSGAN, 3 LINEAR; term(s; sgn, t) per element
//              (enum Kind below = fastgan.registry.Kind, checked by tests/test_structure.py)
//   params     {sgn_r, t_r, sgn_f, t_f} (a missing real side: real undefined)
//   reduction  0 none, 1 mean, 2 sum (enum Reduction = fastgan.registry.Reduction)
//   half types accumulate in float32, float64 in float64; results in the input's dtype
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/List.h>

#include <vector>

namespace fastgan {

enum Kind : int64_t { BCE = 0, HINGE = 1, LSGAN = 2, LINEAR = 3 };
enum Reduction : int64_t { NONE = 0, MEAN = 1, SUM = 2 };

// elements per reduction chunk: partial sums are formed per chunk and added in
// chunk order, so the result does not depend on the number of threads
constexpr int64_t kChunk = 16384;

std::vector<at::Tensor> pair_fwd_cpu(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                     at::ArrayRef<double> params, int64_t reduction);
std::vector<at::Tensor> pair_bwd_cpu(const c10::optional<at::Tensor>& real, const at::Tensor& fake, int64_t kind,
                                     at::ArrayRef<double> params, int64_t reduction, at::TensorList grads);
// CPU, reduced pair losses that need a gradient: the forward also writes each side's
// d term / d logit (in the accumulation dtype, before the upstream gradient and the
// mean weight) so the backward is one scale, g = up · w · d, instead of a second
// transcendental pass.  Returns {loss, d_real, d_fake}, or {loss, d_fake} without real
// (op fastgan_native::pair_fwd_saving).
std::vector<at::Tensor> pair_fwd_saving_cpu(const c10::optional<at::Tensor>& real, const at::Tensor& fake,
                                            int64_t kind, at::ArrayRef<double> params, int64_t reduction);
// g = up · mean weight (of d's size) · d in dtype; up is the loss's 0-d CPU gradient
// (op fastgan_native::pair_scale)
at::Tensor pair_scale_cpu(const at::Tensor& d, const at::Tensor& up, int64_t reduction, at::ScalarType dtype);
at::Tensor bce_fwd_cpu(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                       const c10::optional<at::Tensor>& pw, int64_t reduction);
at::Tensor bce_bwd_cpu(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                       const c10::optional<at::Tensor>& pw, int64_t reduction, const at::Tensor& up);
std::vector<at::Tensor> penalty_fwd_cpu(const at::Tensor& g, double center, bool one_sided, int64_t reduction);
at::Tensor penalty_bwd_cpu(const at::Tensor& g, const at::Tensor& sq, double center, bool one_sided,
                           int64_t reduction, const at::Tensor& up);

// feature matching over lists of maps: Σ_m scales[m] · Σ_i |g − r|^p (p = 1 or 2), one read of
// each map, the total as a 0-d tensor of the promoted dtype of the fakes (op fm_fwd); and
// ∂/∂g per map: up · scales[m] · sign(g − r) (p = 1, sign(0) = 0) or 2·(g − r) (p = 2), in
// each fake's dtype and shape (op fm_bwd).  Real and fake maps of one index have one
// shape and dtype (the Python layer checks and converts).
at::Tensor fm_fwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales);
std::vector<at::Tensor> fm_bwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t p, at::ArrayRef<double> scales,
                                   const at::Tensor& up);

// pair losses over lists, one per discriminator: loss_d = w_r·Σ term(real_d) + w_f·Σ
// term(fake_d) (w = 1/n for mean, 1 for sum; a mean over an empty tensor is nan), the N
// losses as a 1-D tensor of the fakes' dtype (op pair_list_fwd); reals empty for a
// generator loss; kind and params as pair_fwd; reduction mean or sum.  And the
// gradients: g = up[d] · w · d term / d x, the reals' then the fakes', each shaped like
// its input; an empty placeholder for a tensor whose `needs` flag is false (op
// pair_list_bwd).  All tensors of one dtype and device.  CPU: one parallel region over the
// fixed chunks of all the tensors, each tensor's chunk sums added in chunk order (the
// same bits as pair_fwd per tensor, whatever the threads).
at::Tensor pair_list_fwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t kind, at::ArrayRef<double> params,
                             int64_t reduction);
std::vector<at::Tensor> pair_list_bwd_cpu(at::TensorList reals, at::TensorList fakes, int64_t kind,
                                          at::ArrayRef<double> params, int64_t reduction, const at::Tensor& up,
                                          const c10::optional<c10::List<bool>>& needs);

// the relativistic losses' autograd ops through the dispatcher, for pybind11 (relativistic.cpp)
std::vector<at::Tensor> py_ragan_loss(const at::Tensor& real, const at::Tensor& fake,
                                      const std::vector<double>& labels, int64_t reduction);
at::Tensor py_rpgan_loss(const at::Tensor& real, const at::Tensor& fake, bool gen, int64_t reduction);

// helpers shared by both devices
inline double mean_weight(int64_t reduction, int64_t n) {
  return (reduction == MEAN && n > 0) ? 1.0 / static_cast<double>(n) : 1.0;
}
inline at::ScalarType acc_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}
// a flattened, contiguous view (a copy only for non-contiguous inputs, on the same device)
inline at::Tensor flat(const at::Tensor& x) { return x.contiguous().view({-1}); }
// The BCE drop-in's labels and weights enter the math in the accumulation dtype of the
// input (float32 for half inputs: a weight of 1e5 or 1e-8 survives), not in the input's
// own dtype; no copy when already in that dtype.
// target, which has the input's shape: flattened, in the accumulation dtype
inline at::Tensor acc_flat(const at::Tensor& t, const at::Tensor& like) {
  return flat(t.to(acc_type(like.scalar_type())));
}
// weight / pos_weight broadcast to the input's shape, materialised contiguous, in the
// accumulation dtype
inline at::Tensor expand_flat(const c10::optional<at::Tensor>& v, const at::Tensor& like) {
  if (!v.has_value() || !v->defined()) return at::Tensor();
  return v->to(acc_type(like.scalar_type())).expand(like.sizes()).contiguous().view({-1});
}

}  // namespace fastgan

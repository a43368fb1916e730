// fastgan native ops: shared declarations of the CPU (cpu.cpp) and CUDA (cuda.cu) kernels.
//
// Conventions, the same as the Triton kernels (kernels/losses.py, kernels/penalty.py):
//   kind       0 BCE, 1 HINGE, 2 LSGAN, 3 LINEAR; term(s; sgn, t) per element
//   params     {sgn_r, t_r, sgn_f, t_f} (a missing real side: real undefined)
//   reduction  0 none, 1 mean, 2 sum
//   half types accumulate in float32, float64 in float64; results in the input's dtype
#pragma once

#include <ATen/ATen.h>

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
// mean weight) so the backward is one scale, g = c · d, instead of a second
// transcendental pass.  Returns {loss, d_real (undefined without real), d_fake}.
std::vector<at::Tensor> pair_fwd_saving_cpu(const at::Tensor& real, const at::Tensor& fake, int64_t kind,
                                            at::ArrayRef<double> params, int64_t reduction);
at::Tensor pair_scale_cpu(const at::Tensor& d, double c, at::ScalarType dtype);
at::Tensor bce_fwd_cpu(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                       const c10::optional<at::Tensor>& pw, int64_t reduction);
at::Tensor bce_bwd_cpu(const at::Tensor& x, const at::Tensor& t, const c10::optional<at::Tensor>& w,
                       const c10::optional<at::Tensor>& pw, int64_t reduction, const at::Tensor& up);
std::vector<at::Tensor> penalty_fwd_cpu(const at::Tensor& g, double center, bool one_sided, int64_t reduction);
at::Tensor penalty_bwd_cpu(const at::Tensor& g, const at::Tensor& sq, double center, bool one_sided,
                           int64_t reduction, const at::Tensor& up);

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

// The differentiable derivative formulas in ATen tensor ops, shared by the C++ autograd
// functions of ops.cpp (pair, BCE, penalty) and relativistic.cpp (RaGAN, RpGAN): what
// their backward records when a graph of the gradient is requested (create_graph=True).
// See ops.cpp's "the differentiable backward rule" for why they follow the kernels'
// branch structure.
#pragma once

#include <ATen/ATen.h>

#include "fastgan.h"

namespace fastgan {

// the mean's weight 1/n as a Scalar: the same double as the kernels' mean_weight for a
// concrete size; a symbolic float while tracing with dynamic shapes (torch.compile)
inline c10::Scalar mean_scalar(int64_t reduction, const c10::SymInt& n) {
  if (auto c = n.maybe_as_int()) return mean_weight(reduction, *c);
  if (reduction != MEAN) return 1.0;
  return c10::SymFloat(1.0) / c10::SymFloat(n);
}

// 0 · ∞ = 0 in the label products, as reference._mul0: b with its infinite values
// replaced by 0 where a == 0 (d(a · b)/da, so a label of exactly 0 or 1 keeps its
// gradient wherever b is finite), and the product itself
inline at::Tensor mask0_aten(const at::Tensor& a, const at::Tensor& b) {
  return at::where((a == 0).logical_and(b.isinf()), at::zeros_like(b), b);
}
inline at::Tensor mul0_aten(const at::Tensor& a, const at::Tensor& b) { return a * mask0_aten(a, b); }

// d BCEwithlogits(s, t) / ds = sigmoid(s) − t, as the kernels' dbce: the branch that
// does not cancel in each tail; 0.5 − t at s = 0, 1 − t at +∞, −t at −∞, nan for nan.
// Each branch is differentiable, so the second derivative is sigmoid'(s) everywhere.
template <typename T>
at::Tensor dbce_aten(const at::Tensor& s, const T& t) {
  return at::where(s > 0, (1 - t) - at::sigmoid(-s), at::sigmoid(s) - t);
}

inline at::Tensor dterm_aten(const at::Tensor& s, int64_t kind, double sgn, double t) {
  switch (kind) {
    case BCE: return dbce_aten(s, t) * sgn;
    // sgn where t + sgn·s > 0, else 0 (zero at the margin), as relu's backward; a function
    // of s (derivative 0), so a create_graph gradient stays in the graph as torch's relu
    case HINGE: return at::threshold_backward(at::full_like(s, sgn), s * sgn + t, 0);
    case LSGAN: return s - t;
    default: return at::full_like(s, sgn);  // LINEAR: a constant, as torch's
  }
}

}  // namespace fastgan
